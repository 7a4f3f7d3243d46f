"""st_contrast.checkpointing: the losses' own state in every Trainer checkpoint, restored on resume."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from st_contrast import checkpointing
from st_contrast.checkpointing import (
    LOSS_STATE_FILE,
    LossStateCallback,
    keep_loss_state,
    load_trainer_loss_state,
    loss_state_dict,
    save_trainer_loss_state,
)
from st_contrast.losses import CILLoss, SelfGuidedContrastiveLoss, SimCSELoss, SupConLoss, SupConOODLoss

ROOT = Path(__file__).resolve().parents[1]


def _scramble(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter))


def _trainer(model, loss) -> SimpleNamespace:
    """What the save/load functions read from a Trainer: its model and its loss (or dict of losses)."""
    return SimpleNamespace(model=model, loss=loss)


# -- what is saved --------------------------------------------------------------------------------------------


def test_loss_state_is_the_head_without_the_model(tiny_model):
    state = loss_state_dict(SimCSELoss(tiny_model, projection="mlp"), tiny_model)
    assert sorted(state) == ["projection_head.dense.bias", "projection_head.dense.weight"]
    assert loss_state_dict(SimCSELoss(tiny_model), tiny_model) == {}  # no head: nothing of its own
    assert all(not value.requires_grad for value in state.values())


def test_a_head_that_lives_in_the_model_is_left_to_the_model(tiny_model_mean):
    # SupConOODLoss appends its classifier to the model and also holds it as loss.head: saved with the model
    loss = SupConOODLoss(tiny_model_mean, num_labels=3, stage="contrastive")
    assert any(key.startswith("head.") for key in loss.state_dict())
    assert loss_state_dict(loss, tiny_model_mean) == {"_extra_state": {"stage": "contrastive"}}


def test_a_tensor_of_the_model_held_directly_by_the_loss_is_left_out(tiny_model):
    loss = SimCSELoss(tiny_model, projection="mlp")
    loss.shared = next(tiny_model.parameters())  # a Parameter of the model registered on the loss itself
    assert "shared" in loss.state_dict()
    assert "shared" not in loss_state_dict(loss, tiny_model)


def test_a_wrapped_loss_saves_and_restores_its_inner_head(tiny_model, tmp_path):
    from sentence_transformers.losses import MatryoshkaLoss

    inner = SimCSELoss(tiny_model, projection="mlp")
    loss = MatryoshkaLoss(tiny_model, inner, matryoshka_dims=[32, 16])
    saved = {k: v.clone() for k, v in inner.projection_head.state_dict().items()}
    model_before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    assert save_trainer_loss_state(_trainer(tiny_model, loss), tmp_path) == str(tmp_path / LOSS_STATE_FILE)
    payload = torch.load(tmp_path / LOSS_STATE_FILE, weights_only=True)
    assert payload["losses"][""]["class"] == "MatryoshkaLoss"
    assert sorted(payload["losses"][""]["state"]) == [
        "loss.projection_head.dense.bias",
        "loss.projection_head.dense.weight",
    ]

    _scramble(inner.projection_head)
    _scramble(tiny_model)
    assert load_trainer_loss_state(_trainer(tiny_model, loss), tmp_path) is True
    for key, value in inner.projection_head.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    # the model's own tensors are not touched by the loss state (they come from the model checkpoint)
    assert any(not torch.equal(v, model_before[k]) for k, v in tiny_model.state_dict().items())


def test_a_dict_of_losses_keeps_each_stateful_loss_by_name(tiny_model, tmp_path):
    first, second = SimCSELoss(tiny_model, projection="mlp"), SimCSELoss(tiny_model, projection="mlp")
    losses = {"nli": first, "wiki": SimCSELoss(tiny_model), "other": second}
    saved = {
        name: {k: v.clone() for k, v in loss.state_dict().items()}
        for name, loss in (("nli", first), ("other", second))
    }  # noqa: E501
    save_trainer_loss_state(_trainer(tiny_model, losses), tmp_path)
    payload = torch.load(tmp_path / LOSS_STATE_FILE, weights_only=True)
    assert sorted(payload["losses"]) == ["nli", "other"]  # "wiki" owns nothing
    _scramble(first.projection_head)
    _scramble(second.projection_head)
    assert load_trainer_loss_state(_trainer(tiny_model, losses), tmp_path) is True
    for name, loss in (("nli", first), ("other", second)):
        for key, value in loss.state_dict().items():
            assert torch.equal(value, saved[name][key]), (name, key)


def test_nothing_is_written_or_needed_when_no_loss_owns_state(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, SimCSELoss(tiny_model))
    assert save_trainer_loss_state(trainer, tmp_path) is None
    assert not (tmp_path / LOSS_STATE_FILE).exists()
    assert load_trainer_loss_state(trainer, tmp_path) is False


# -- counters -------------------------------------------------------------------------------------------------


def test_cil_step_counter_travels_in_the_state_dict(tiny_transformer_dir, tmp_path):
    from st_contrast.modules.entity_pooling import build_relation_encoder

    model = build_relation_encoder(str(tiny_transformer_dir), max_seq_length=64, device="cpu")
    loss = CILLoss(model, num_relations=3, warmup_steps=4)
    loss.step = 7
    save_trainer_loss_state(_trainer(model, loss), tmp_path)
    fresh = CILLoss(model, num_relations=3, warmup_steps=4)
    assert fresh.step == 0
    load_trainer_loss_state(_trainer(model, fresh), tmp_path)
    assert fresh.step == 7 and fresh.alpha() == loss.alpha()
    torch.testing.assert_close(fresh.bag_classifier.classifier.weight, loss.bag_classifier.classifier.weight)
    with pytest.raises(
        ValueError, match=re.escape("CILLoss: the saved state must hold an integer step >= 0, got {'step': -1}")
    ):  # noqa: E501
        fresh.set_extra_state({"step": -1})


def test_supcon_ood_stage_and_supcon_counters_are_restored(tiny_model_mean, caplog):
    loss = SupConOODLoss(tiny_model_mean, num_labels=3, stage="contrastive")
    loss.set_stage("classification")
    fresh = SupConOODLoss(tiny_model_mean, num_labels=3, stage="contrastive")
    with caplog.at_level(logging.WARNING):
        fresh.load_state_dict(loss.state_dict())
    assert fresh.stage == "classification"
    assert "restoring stage 'classification' from the saved state (the loss was at 'contrastive')" in caplog.text
    with pytest.raises(ValueError, match=re.escape("SupConOODLoss: the saved state must hold a stage in")):
        fresh.set_extra_state({"stage": "warmup"})

    counting = SupConLoss(tiny_model_mean)
    counting.skipped_anchors, counting.total_anchors = 3, 40
    restored = SupConLoss(tiny_model_mean)
    restored.load_state_dict(counting.state_dict())
    assert (restored.skipped_anchors, restored.total_anchors) == (3, 40)
    with pytest.raises(ValueError, match=re.escape("SupConLoss: the saved state must hold integer")):
        restored.set_extra_state({"skipped_anchors": 1})


# -- errors ---------------------------------------------------------------------------------------------------


def test_missing_state_is_a_clear_error(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, SimCSELoss(tiny_model, projection="mlp"))
    expected = (
        f"{tmp_path}: no {LOSS_STATE_FILE} in this checkpoint, but SimCSELoss own(s) trainable state (heads, learned "
        "weights or counters) that a resumed run needs. It was saved without "
        "st_contrast.checkpointing.keep_loss_state(trainer); resuming it would restart that state from scratch. "
        "Resume from a checkpoint written with keep_loss_state, or start the run again."
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(expected)}$"):
        load_trainer_loss_state(trainer, tmp_path)


def test_state_of_other_losses_is_refused(tiny_model, tmp_path):
    save_trainer_loss_state(_trainer(tiny_model, {"nli": SimCSELoss(tiny_model, projection="mlp")}), tmp_path)
    path = tmp_path / LOSS_STATE_FILE
    expected = (
        f"{path}: saved state for loss(es) ['nli'], but the trainer's stateful losses are ['wiki']; build the "
        "trainer with the same losses as the run that wrote the checkpoint."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_trainer_loss_state(_trainer(tiny_model, {"wiki": SimCSELoss(tiny_model, projection="mlp")}), tmp_path)


def test_state_of_a_loss_built_otherwise_is_refused(tiny_model, tmp_path):
    from sentence_transformers.losses import MatryoshkaLoss

    save_trainer_loss_state(_trainer(tiny_model, SimCSELoss(tiny_model, projection="mlp")), tmp_path)
    path = tmp_path / LOSS_STATE_FILE
    wrapped = MatryoshkaLoss(tiny_model, SimCSELoss(tiny_model, projection="mlp"), matryoshka_dims=[32, 16])
    expected = (
        f"{path}: the saved state of MatryoshkaLoss does not match the loss built now (missing "
        "['loss.projection_head.dense.bias', 'loss.projection_head.dense.weight'], unexpected "
        "['projection_head.dense.bias', 'projection_head.dense.weight']). Build the loss with the same settings as "
        "the run that wrote the checkpoint."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_trainer_loss_state(_trainer(tiny_model, wrapped), tmp_path)


def test_state_with_other_shapes_is_refused(tiny_model, tmp_path):
    save_trainer_loss_state(_trainer(tiny_model, SelfGuidedContrastiveLoss(tiny_model, projection_dim=16)), tmp_path)
    path = tmp_path / LOSS_STATE_FILE
    expected = (
        f"{path}: the saved state of SelfGuidedContrastiveLoss has other shapes than the loss built now (saved vs "
        "now: projection_head.0.weight (16, 32) vs (8, 32); projection_head.0.bias (16,) vs (8,); "
        "projection_head.2.weight (16, 16) vs (8, 8); projection_head.2.bias (16,) vs (8,)). Build the loss with "
        "the same settings as the run that wrote the checkpoint."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_trainer_loss_state(
            _trainer(tiny_model, SelfGuidedContrastiveLoss(tiny_model, projection_dim=8)), tmp_path
        )


def test_the_state_file_is_replaced_atomically(tiny_model, tmp_path, monkeypatch):
    loss = SimCSELoss(tiny_model, projection="mlp")
    trainer = _trainer(tiny_model, loss)
    save_trainer_loss_state(trainer, tmp_path)
    saved = {k: v.clone() for k, v in loss.state_dict().items()}
    assert sorted(os.listdir(tmp_path)) == [LOSS_STATE_FILE]  # no temporary file left behind

    def killed_while_writing(obj, path):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt  # the run stops in the middle of the write

    _scramble(loss.projection_head)
    monkeypatch.setattr(checkpointing.torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        save_trainer_loss_state(trainer, tmp_path)
    monkeypatch.undo()
    load_trainer_loss_state(trainer, tmp_path)  # the earlier complete file is still there and loads
    for key, value in loss.state_dict().items():
        assert torch.equal(value, saved[key])


# -- through the Trainer and model.fit ------------------------------------------------------------------------


def _args(output_dir, max_steps: int, save_steps: int, **kwargs):
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        max_steps=max_steps,
        learning_rate=1e-3,
        warmup_steps=0,
        save_strategy="steps",
        save_steps=save_steps,
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=0,
        **kwargs,
    )


def test_trainer_checkpoints_hold_the_loss_state_and_resume_loads_it(tiny_model, sentences, tmp_path):
    import copy

    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer

    start = copy.deepcopy(tiny_model)
    dataset = Dataset.from_dict({"sentence": sentences})
    loss = SimCSELoss(tiny_model, projection="mlp")
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=_args(tmp_path, 2, 2), train_dataset=dataset, loss=loss
    )
    assert keep_loss_state(keep_loss_state(trainer)) is trainer
    assert sum(isinstance(c, LossStateCallback) for c in trainer.callback_handler.callbacks) == 1
    trainer.train()
    checkpoint = tmp_path / "checkpoint-2"
    saved = torch.load(checkpoint / LOSS_STATE_FILE, weights_only=True)["losses"][""]["state"]
    for key, value in loss_state_dict(loss, tiny_model).items():
        assert torch.equal(saved[key], value)

    # a fresh loss resumed at the checkpoint's last step (no step left to take) holds the trained head
    for resume in (True, str(checkpoint)):
        model = copy.deepcopy(start)
        fresh = SimCSELoss(model, projection="mlp")
        _scramble(fresh.projection_head)
        resumed = SentenceTransformerTrainer(
            model=model, args=_args(tmp_path, 2, 2), train_dataset=dataset, loss=fresh
        )
        keep_loss_state(resumed).train(resume_from_checkpoint=resume)
        for key, value in loss_state_dict(fresh, model).items():
            assert torch.equal(value, saved[key]), (resume, key)

    # a callback added by hand (train() not wrapped) finds the checkpoint from the resumed global step
    model = copy.deepcopy(start)
    fresh = SimCSELoss(model, projection="mlp")
    resumed = SentenceTransformerTrainer(model=model, args=_args(tmp_path, 2, 2), train_dataset=dataset, loss=fresh)
    resumed.add_callback(LossStateCallback(resumed))
    resumed.train(resume_from_checkpoint=str(checkpoint))
    torch.testing.assert_close(
        fresh.projection_head.dense.weight, saved["projection_head.dense.weight"], rtol=0, atol=0
    )


def test_resuming_a_checkpoint_without_the_loss_state_fails_before_training(tiny_model, sentences, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer

    dataset = Dataset.from_dict({"sentence": sentences})
    loss = SimCSELoss(tiny_model, projection="mlp")
    SentenceTransformerTrainer(model=tiny_model, args=_args(tmp_path, 1, 1), train_dataset=dataset, loss=loss).train()
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=_args(tmp_path, 2, 1), train_dataset=dataset, loss=loss
    )
    keep_loss_state(trainer)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'checkpoint-1'}: no {LOSS_STATE_FILE}")):
        trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 1  # refused before any step was taken


def _fit(model, loss, checkpoint_path, steps: int, resume: bool) -> None:
    from sentence_transformers import InputExample
    from torch.utils.data import DataLoader

    examples = [InputExample(texts=[text]) for text in (SENTENCES_FOR_FIT * 4)[: 4 * steps]]
    model.fit(
        train_objectives=[(DataLoader(examples, batch_size=4, shuffle=False), loss)],
        epochs=1,
        steps_per_epoch=steps,
        warmup_steps=0,
        optimizer_params={"lr": 1e-3},
        show_progress_bar=False,
        checkpoint_path=str(checkpoint_path),
        checkpoint_save_steps=2,
        resume_from_checkpoint=resume,
    )


SENTENCES_FOR_FIT = [
    "a man is playing a guitar",
    "the cat sat on the mat",
    "scientists found a new species of frog",
    "the stock market fell on monday",
    "she is reading a book about rome",
    "two children play football in the park",
]


@pytest.mark.filterwarnings("ignore:.pin_memory. argument:UserWarning")
def test_model_fit_resumes_exactly_under_the_context_form(_tiny_bert_session, tmp_path, monkeypatch):
    """model.fit(checkpoint_path=..., resume_from_checkpoint=True) resumes the losses too, inside keep_loss_state()."""
    import copy

    from sentence_transformers import SentenceTransformerTrainer

    monkeypatch.chdir(tmp_path)  # model.fit may write a default checkpoints/ folder

    def run(checkpoint_path, resume, keep):
        model = copy.deepcopy(_tiny_bert_session)
        torch.manual_seed(0)
        loss = SimCSELoss(model, projection="mlp")
        if keep:
            with keep_loss_state():
                _fit(model, loss, checkpoint_path, 4, resume)
        else:
            _fit(model, loss, checkpoint_path, 4, resume)
        return {**{f"model.{k}": v for k, v in model.state_dict().items()}, **loss_state_dict(loss, model)}

    original_init = SentenceTransformerTrainer.__init__
    full = run(tmp_path / "full", resume=False, keep=True)
    assert SentenceTransformerTrainer.__init__ is original_init  # the context form undoes its patch
    assert (tmp_path / "full" / "checkpoint-2" / LOSS_STATE_FILE).is_file()
    assert torch.load(tmp_path / "full" / "checkpoint-2" / LOSS_STATE_FILE, weights_only=True)["losses"].keys() == {
        "_dataset_1"
    }  # model.fit hands the Trainer a dict of losses

    for keep in (True, False):
        folder = tmp_path / f"resumed-{keep}"
        shutil.copytree(tmp_path / "full" / "checkpoint-2", folder / "checkpoint-2")  # as if killed after step 2
        resumed = run(folder, resume=True, keep=keep)
        difference = max((resumed[k] - full[k]).abs().max().item() for k in full)
        if keep:
            assert difference <= 1e-6
        else:  # without keep_loss_state the head restarts from scratch and the run diverges
            assert difference > 1e-5


# -- killed and resumed for real, every stateful loss ---------------------------------------------------------


@pytest.mark.slow
def test_killed_and_resumed_runs_equal_uninterrupted_runs_for_every_stateful_loss(tmp_path):
    """One worker process forks, per loss, an uninterrupted run, a run killed with SIGKILL right after
    checkpoint-3, a fresh process that resumes it with keep_loss_state, and one that resumes without it."""
    from tests.resume_worker import KILL_AT, LOSSES, STEPS

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.resume_worker", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))["losses"]
    assert sorted(summary) == sorted(LOSSES)
    for name, row in summary.items():
        resumed, off = row["resume"], row["resume_off"]
        assert len(row["step_losses"]["full"]) == STEPS and len(row["step_losses"]["resume"]) == STEPS - KILL_AT
        assert resumed["global_step"] == off["global_step"] == STEPS
        assert resumed["max_step_loss_difference"] <= 1e-6, (name, resumed)
        assert resumed["max_weight_difference"] <= 1e-6, (name, resumed)
        assert resumed["counters_equal"], (name, row["counters"])
        # without the loss state the same resume diverges: the comparison sees what the loss owns
        assert off["max_weight_difference"] > 1e-5 or not off["counters_equal"], (name, off)
    assert summary["cil"]["counters"]["resume"] == {"_extra_state": {"step": STEPS}}
    assert summary["supcon_ood"]["counters"]["resume"] == {"_extra_state": {"stage": "classification"}}

"""Resume equality for every loss that owns state: uninterrupted vs killed-with-SIGKILL-and-resumed runs.

Run as ``python -m tests.resume_worker OUT [LOSS ...] [--results FILE]`` (all losses by default). The worker
imports the libraries and writes the tiny model folders once, then forks one child process per run, so
that the runs are separate processes without paying the import each time:

- ``full``: ``STEPS`` steps uninterrupted (a checkpoint every ``KILL_AT`` steps, as in the other runs);
- ``kill``: the same run, killed with SIGKILL by a callback right after ``checkpoint-KILL_AT`` is written
  (loss state included); the parent checks that the child died of SIGKILL;
- ``resume``: a fresh process builds model and loss again from the starting model, adds
  ``keep_loss_state`` and calls ``trainer.train(resume_from_checkpoint=True)`` in the killed run's folder;
- ``resume_off``: the same from the same checkpoint *without* ``keep_loss_state`` (the loss's state is
  neither saved nor restored), which must diverge, so that the comparison is shown to see the loss's state.

Each child records the loss value of every training forward (dropout on, float32) and the final model
and loss tensors and counters. The parent compares them and writes ``OUT/summary.json`` (and ``--results``):
per loss, the largest step-loss and weight differences of ``resume`` and ``resume_off`` against ``full``,
and whether the counters (CIL's step, SupConOOD's stage, SupCon's anchor counts) match.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

STEPS = 6
KILL_AT = 3
BATCH_SIZE = 4

SENTENCES = [
    "a man is playing a guitar",
    "the cat sat on the mat",
    "scientists found a new species of frog",
    "the stock market fell on monday",
    "she is reading a book about rome",
    "two children play football in the park",
    "heavy rain caused flooding in the town",
    "the museum opened a new exhibition",
]
ORIGINAL = ["a man is playing a guitar", "the cat sat on the mat", "two children play football in the park"]
SYNONYM = ["a man is performing a guitar", "the feline sat on the mat", "two kids play football in the park"]
ANTONYM = ["a woman is playing a guitar", "the cat stood on the rug", "two children lose football in the park"]
RELATION_TEXTS = [
    ("the museum in paris opened a new hall", (1, 2), (3, 4), "located_in"),
    ("a new bridge in london was opened today", (2, 3), (4, 5), "located_in"),
    ("the school in rome hired more teachers", (1, 2), (3, 4), "located_in"),
    ("the station of berlin was busy at night", (1, 2), (3, 4), "located_in"),
    ("john works for the bank near the river", (0, 1), (4, 5), "employer"),
    ("mary works for the museum since may", (0, 1), (4, 5), "employer"),
    ("the doctor works for the hospital now", (1, 2), (5, 6), "employer"),
    ("anna joined the company last year happily", (0, 1), (3, 4), "employer"),
]

#: every loss that owns state, and what it owns
LOSSES = {
    "simcse_mlp": "SimCSELoss(projection='mlp'): MLP head",
    "cached_simcse_mlp": "CachedSimCSELoss(projection='mlp'): MLP head",
    "self_guided": "SelfGuidedContrastiveLoss (SG-OPT): projection head",
    "cline": "CLINELoss(objective='official'): MLM and RTD heads, learned loss weights",
    "declutr_mlm": "DeCLUTRLoss: MLM head",
    "cached_declutr_mlm": "CachedDeCLUTRLoss: MLM head",
    "cil": "CILLoss: MLM head, bag classifier, step counter",
    "supcon_ood": "SupConOODLoss: stage schedule (switched by a callback at step 2)",
    "cached_supcon": "CachedSupConLoss: anchor counters",
    "consert_joint": "ConSERTLoss(supervised_loss=SoftmaxLoss): the supervised loss's classifier",
}


# -- models, data and losses --------------------------------------------------------------------------------


def prepare_models(root: Path) -> dict[str, str]:
    """The tiny transformer folders every child loads its model from (built once, before any fork)."""
    from st_contrast.testing import build_tiny_transformer

    return {"bert": str(build_tiny_transformer(root / "tiny-bert-mlm", with_mlm_head=True))}


def _sentence_model(path: str, pooling: str):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    transformer = Transformer(path, max_seq_length=32)
    return SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling)], device="cpu"
    )


def _relation_instances():
    from st_contrast.data.relation import RelationInstance

    return [
        RelationInstance(tuple(text.split()), head, tail, relation, uid=f"{copy}-{i}")
        for copy in range(3)
        for i, (text, head, tail, relation) in enumerate(RELATION_TEXTS)
    ]


def build(name: str, models: dict[str, str]) -> tuple[Any, Any, Any, int, list]:
    """``(model, loss, dataset, batch_size, callbacks)`` for one loss, the same in every process."""
    import torch
    from datasets import Dataset

    from st_contrast import losses as L

    torch.manual_seed(0)  # the losses' heads start the same in every run
    bert = models["bert"]
    rows = STEPS * BATCH_SIZE
    sentences = (SENTENCES * rows)[:rows]
    callbacks: list = []
    if name in ("simcse_mlp", "cached_simcse_mlp"):
        model = _sentence_model(bert, "cls")
        loss = (
            L.SimCSELoss(model, projection="mlp")
            if name == "simcse_mlp"
            else L.CachedSimCSELoss(model, projection="mlp", mini_batch_size=3)
        )
        return model, loss, Dataset.from_dict({"sentence": sentences}), BATCH_SIZE, callbacks
    if name == "self_guided":
        model = _sentence_model(bert, "cls")
        loss = L.SelfGuidedContrastiveLoss(model, projection_dim=32)
        return model, loss, Dataset.from_dict({"sentence": sentences}), BATCH_SIZE, callbacks
    if name == "cline":
        model = _sentence_model(bert, "mean")
        loss = L.CLINELoss(model, objective="official")
        n = STEPS * 3
        columns = {"original": ORIGINAL * STEPS, "synonym": SYNONYM * STEPS, "antonym": ANTONYM * STEPS}
        return model, loss, Dataset.from_dict({k: v[:n] for k, v in columns.items()}), 3, callbacks
    if name in ("declutr_mlm", "cached_declutr_mlm"):
        from st_contrast.data.declutr import DeCLUTRSpanSampler

        model = _sentence_model(bert, "mean")
        documents = [" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(8)) for i in range(STEPS * 2)]
        dataset = DeCLUTRSpanSampler(min_span=3, max_span=10, seed=0).dataset(documents)
        loss = L.DeCLUTRLoss(model) if name == "declutr_mlm" else L.CachedDeCLUTRLoss(model, mini_batch_size=5)
        return model, loss, dataset, 2, callbacks
    if name == "cil":
        from st_contrast.data.relation import cil_dataset, pseudo_bags, relation_ids
        from st_contrast.modules.entity_pooling import build_relation_encoder
        from st_contrast.views.tfidf import TfidfSubstitution

        model = build_relation_encoder(bert, max_seq_length=64, device="cpu")
        instances = _relation_instances()
        view = TfidfSubstitution(seed=0).fit(instances)
        rel2id = relation_ids(instances)
        dataset = cil_dataset(pseudo_bags(instances, 2, seed=0), rel2id, 2, augment=view, max_words=12)
        torch.manual_seed(0)
        loss = L.CILLoss(model, num_relations=len(rel2id), warmup_steps=4)
        return model, loss, dataset, 2, callbacks
    if name == "supcon_ood":
        from transformers import TrainerCallback

        model = _sentence_model(bert, "mean")
        loss = L.SupConOODLoss(model, num_labels=3, stage="contrastive")

        class SwitchStage(TrainerCallback):  # a user's schedule: contrastive first, classification from step 3
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 2:
                    loss.set_stage("classification")

        labels = ([0, 1, 2, 0, 1, 2, 0, 1] * rows)[:rows]
        callbacks.append(SwitchStage())
        return model, loss, Dataset.from_dict({"sentence": sentences, "label": labels}), BATCH_SIZE, callbacks
    if name == "cached_supcon":
        model = _sentence_model(bert, "mean")
        loss = L.CachedSupConLoss(model, dropout_views=True, mini_batch_size=3)
        labels = ([0, 1, 2, 0, 1, 2, 0, 1] * rows)[:rows]  # some anchors without a positive: the counter moves
        return model, loss, Dataset.from_dict({"sentence": sentences, "label": labels}), BATCH_SIZE, callbacks
    if name == "consert_joint":
        from sentence_transformers.losses import SoftmaxLoss

        model = _sentence_model(bert, "mean")
        supervised = SoftmaxLoss(model, model.get_embedding_dimension(), num_labels=3)
        loss = L.ConSERTLoss(model, supervised_loss=supervised)
        premises, hypotheses = sentences, sentences[1:] + sentences[:1]
        labels = ([0, 1, 2] * rows)[:rows]
        data = {"premise": premises, "hypothesis": hypotheses, "label": labels}
        return model, loss, Dataset.from_dict(data), BATCH_SIZE, callbacks
    raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")


# -- one run in a child process ------------------------------------------------------------------------------


def run(name: str, models: dict[str, str], output_dir: Path, keep: bool, kill_at: int | None, resume: Any) -> dict:
    """Train ``name`` in this process; return the step losses, and write the final tensors beside them."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from st_contrast.checkpointing import keep_loss_state

    torch.set_num_threads(1)
    model, loss, dataset, batch_size, callbacks = build(name, models)
    step_losses: list[float] = []

    def record(module, inputs, output):
        if torch.is_grad_enabled():
            value = sum(output.values()) if isinstance(output, dict) else output
            step_losses.append(float(value.detach()))

    loss.register_forward_hook(record)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=STEPS,
        learning_rate=1e-3,
        warmup_steps=0,
        save_strategy="steps",
        save_steps=KILL_AT,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks)
    if keep:
        keep_loss_state(trainer)

    class KillAfterCheckpoint(TrainerCallback):  # added last: runs after the loss state is written
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    trainer.add_callback(KillAfterCheckpoint())
    trainer.train(resume_from_checkpoint=resume)
    state = loss.state_dict()
    tensors = {key: value.detach().clone() for key, value in state.items() if isinstance(value, torch.Tensor)}
    torch.save(tensors, output_dir / "final.pt")
    counters = {key: value for key, value in state.items() if not isinstance(value, torch.Tensor)}
    return {"step_losses": step_losses, "counters": counters, "global_step": trainer.state.global_step}


def _in_child(target, result_file: Path) -> int:
    """Run ``target()`` in a forked child; its JSON result goes to ``result_file``. Returns the wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        log = os.open(result_file.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)  # the Trainer's log lines and load reports go to the run's folder
        os.dup2(log, 2)
        try:
            result_file.write_text(json.dumps(target()), encoding="utf-8")
        except BaseException:  # noqa: BLE001 - reported to the parent through the file
            result_file.with_suffix(".error").write_text(traceback.format_exc(), encoding="utf-8")
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _child(name, models, folder: Path, kind: str, **kwargs) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    result_file = folder / f"{kind}.json"
    start = time.perf_counter()
    status = _in_child(lambda: run(name, models, folder, **kwargs), result_file)
    seconds = time.perf_counter() - start
    error = result_file.with_suffix(".error")
    if error.is_file():
        raise RuntimeError(f"{name} {kind} run failed:\n{error.read_text(encoding='utf-8')}")
    if kind == "kill":
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            raise RuntimeError(f"{name}: the kill run was not killed by SIGKILL (wait status {status})")
        return {"seconds": seconds}
    if status != 0:
        raise RuntimeError(f"{name} {kind} run exited with wait status {status}")
    return {**json.loads(result_file.read_text(encoding="utf-8")), "seconds": seconds}


def _max_weight_difference(a: Path, b: Path) -> float:
    import torch

    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    if set(first) != set(second):
        raise RuntimeError(f"{a} and {b} hold different tensors")
    return max((first[k].float() - second[k].float()).abs().max().item() for k in first if first[k].numel())


def compare(name: str, models: dict[str, str], root: Path) -> dict:
    """The four runs of one loss and their differences against the uninterrupted run."""
    from st_contrast.checkpointing import LOSS_STATE_FILE

    full = _child(name, models, root / "full", "full", keep=True, kill_at=None, resume=None)
    killed = _child(name, models, root / "run", "kill", keep=True, kill_at=KILL_AT, resume=None)
    checkpoint = root / "run" / f"checkpoint-{KILL_AT}"
    if not (checkpoint / LOSS_STATE_FILE).is_file():
        raise RuntimeError(f"{name}: {checkpoint} has no {LOSS_STATE_FILE}")
    resumed = _child(name, models, root / "run", "resume", keep=True, kill_at=None, resume=True)
    off = _child(name, models, root / "off", "resume_off", keep=False, kill_at=None, resume=str(checkpoint))
    after = full["step_losses"][KILL_AT:]
    result = {"state": LOSSES[name], "steps": STEPS, "resumed_after": KILL_AT}
    for label, other, folder in (("resume", resumed, "run"), ("resume_off", off, "off")):
        if len(other["step_losses"]) != len(after):
            raise RuntimeError(
                f"{name} {label}: {len(other['step_losses'])} steps after the checkpoint, not {len(after)}"
            )
        result[label] = {
            "max_step_loss_difference": max(abs(x - y) for x, y in zip(after, other["step_losses"])),
            "max_weight_difference": _max_weight_difference(root / "full" / "final.pt", root / folder / "final.pt"),
            "counters_equal": other["counters"] == full["counters"],
            "global_step": other["global_step"],
        }
    result["counters"] = {"full": full["counters"], "resume": resumed["counters"], "resume_off": off["counters"]}
    result["step_losses"] = {
        "full": full["step_losses"],
        "resume": resumed["step_losses"],
        "resume_off": off["step_losses"],
    }
    runs = {"full": full, "kill": killed, "resume": resumed, "resume_off": off}
    result["seconds"] = {kind: round(r["seconds"], 2) for kind, r in runs.items()}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("losses", nargs="*", default=list(LOSSES), metavar="LOSS")
    parser.add_argument("--results", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    import sentence_transformers  # noqa: F401 - imported once here, inherited by every child
    import torch

    torch.set_num_threads(1)
    import st_contrast.losses  # noqa: F401

    args.out.mkdir(parents=True, exist_ok=True)
    models = prepare_models(args.out / "models")
    start = time.perf_counter()
    summary = {name: compare(name, models, args.out / name) for name in args.losses}
    report = {"seconds": round(time.perf_counter() - start, 1), "losses": summary}
    text = json.dumps(report, indent=2) + "\n"
    (args.out / "summary.json").write_text(text, encoding="utf-8")
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text, encoding="utf-8")
    for name, row in summary.items():
        r, o = row["resume"], row["resume_off"]
        print(
            f"{name:20s} resume: loss {r['max_step_loss_difference']:.2e} weights {r['max_weight_difference']:.2e} "
            f"counters {r['counters_equal']} | off: loss {o['max_step_loss_difference']:.2e} "
            f"weights {o['max_weight_difference']:.2e} counters {o['counters_equal']}"
        )
    return report


if __name__ == "__main__":
    main()

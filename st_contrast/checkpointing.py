"""Loss state in Trainer checkpoints, so that a resumed run equals the uninterrupted one.

sentence-transformers' Trainer checkpoints hold the model, the optimizer, the scheduler and the RNG state,
but not what a *loss* owns: train-only heads (SimCSE's MLP, SG-OPT's projection, CLINE's MLM/RTD heads,
DeCLUTR's and CIL's MLM heads, CIL's bag classifier), learned loss weights (CLINE's ``log_vars``) and counters
(CIL's ramp step, SupConOOD's stage, SupCon's anchor counts). Resumed without them, a head restarts from a
fresh initialisation while its saved optimizer moments are applied to it, and the run silently diverges.

Not saved: SG-OPT's frozen guide, a copy of the encoder taken when the loss is built (not a submodule); a
resumed run gets the same guide by building the loss on the same starting model as the first run (as
``st-contrast train --resume`` does), not on a checkpoint's weights.

:func:`keep_loss_state` is the one call that closes the gap::

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    keep_loss_state(trainer)
    trainer.train(resume_from_checkpoint=True)  # or a checkpoint folder

It adds a :class:`LossStateCallback`: every checkpoint the Trainer writes gets a
``st_contrast_loss_state.pt`` beside the model, holding each loss's ``state_dict()`` without the
model's own tensors (those are in the checkpoint already), and ``trainer.train(resume_from_checkpoint=...)``
loads it back before the first step. It works for any loss the Trainer holds, ours or not: a single loss, a
dict of losses (multi-dataset training) and wrapped losses (``MatryoshkaLoss(SimCSELoss(...))``), since it
walks the loss modules rather than knowing any of them. Counters that are not tensors travel through
PyTorch's ``get_extra_state`` / ``set_extra_state`` protocol, which our stateful losses implement.

``model.fit`` builds its Trainer inside, where the call cannot be added; use the context form there::

    with keep_loss_state():
        model.fit(..., checkpoint_path="ckpt", checkpoint_save_steps=100, resume_from_checkpoint=True)

The Trainer itself cannot do this: it has no hook that saves or loads state for the loss, and its
callbacks are not handed the loss, so the callback keeps a reference to the trainer it was added to.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

LOSS_STATE_FILE = "st_contrast_loss_state.pt"
_FORMAT = 1


def trainer_losses(trainer: Any) -> dict[str, nn.Module]:
    """The losses a Trainer holds, by dataset name (``""`` for a single loss)."""
    loss = getattr(trainer, "loss", None)
    if isinstance(loss, dict):
        return {str(name): value for name, value in loss.items() if isinstance(value, nn.Module)}
    return {"": loss} if isinstance(loss, nn.Module) else {}


def _model_prefixes(loss: nn.Module, model: nn.Module) -> list[str]:
    """State-dict prefixes under which ``loss`` reaches a module of ``model``: the model itself (or a wrapper
    around it) and any of its submodules held under another name (a classifier head appended to the model
    and also kept as ``loss.head``). Those entries are saved with the model already."""
    model_modules = {id(module) for module in model.modules()}
    prefixes = []
    for name, module in loss.named_modules(remove_duplicate=False):
        inner = getattr(module, "module", None)  # DDP / DataParallel wrappers
        inner = getattr(module, "_orig_mod", inner)  # torch.compile
        if id(module) in model_modules or inner is model:
            prefixes.append(f"{name}." if name else "")
    return prefixes


def _own_entries(loss: nn.Module, model: nn.Module) -> dict[str, Any]:
    """The entries of ``loss.state_dict()`` that are not the model's (by module and by tensor identity)."""
    prefixes = _model_prefixes(loss, model)
    if "" in prefixes:  # the loss *is* the model
        return {}
    model_tensors = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    return {
        key: value
        for key, value in loss.state_dict(keep_vars=True).items()
        if not any(key.startswith(p) for p in prefixes) and id(value) not in model_tensors
    }


def loss_state_dict(loss: nn.Module, model: nn.Module) -> dict[str, Any]:
    """``loss.state_dict()`` without the entries that belong to ``model`` (saved with the model already).

    What remains is everything the loss owns: its heads, learned weights and, through
    ``get_extra_state``, its counters. An empty dict means the loss owns no state.
    """
    return {
        key: value.detach() if isinstance(value, torch.Tensor) else value
        for key, value in _own_entries(loss, model).items()
    }


def load_loss_state_dict(loss: nn.Module, state: dict[str, Any], model: nn.Module, where: str = "") -> None:
    """Load what :func:`loss_state_dict` saved back into ``loss`` (in place, so optimizer references hold).

    Raises:
        ValueError: when the saved entries do not match the loss's own (a loss built with other settings
            than the checkpoint's: a different head, another projection, ...), naming the keys.
    """
    own = _own_entries(loss, model)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{where or 'checkpoint'}: the saved state of {type(loss).__name__} does not match the loss built now "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}). Build the loss with the same settings as the "
            "run that wrote the checkpoint."
        )
    shapes = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in own.items()
        if isinstance(value, torch.Tensor) and isinstance(state[key], torch.Tensor) and state[key].shape != value.shape
    ]
    if shapes:
        raise ValueError(
            f"{where or 'checkpoint'}: the saved state of {type(loss).__name__} has other shapes than the loss built "
            f"now (saved vs now: {'; '.join(shapes[:5])}). Build the loss with the same settings as the run that "
            "wrote the checkpoint."
        )
    loss.load_state_dict(state, strict=False)


def _unwrapped(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)


def save_trainer_loss_state(trainer: Any, folder: str | os.PathLike) -> str | None:
    """Write the state of every loss ``trainer`` holds into ``folder``.

    Returns the file written, or None when no loss owns any state (nothing is written then).
    """
    model = _unwrapped(trainer.model)
    states = {name: loss_state_dict(loss, model) for name, loss in trainer_losses(trainer).items()}
    states = {name: state for name, state in states.items() if state}
    if not states:
        return None
    payload = {
        "format": _FORMAT,
        "losses": {
            name: {"class": type(trainer_losses(trainer)[name]).__name__, "state": s} for name, s in states.items()
        },
    }
    path = os.path.join(os.fspath(folder), LOSS_STATE_FILE)
    temporary = path + ".tmp"
    torch.save(payload, temporary)
    os.replace(temporary, path)  # a checkpoint never holds half a file, even if the run is killed here
    return path


def load_trainer_loss_state(trainer: Any, folder: str | os.PathLike) -> bool:
    """Restore every loss of ``trainer`` from ``folder``; False when no loss owns state (nothing to load).

    Raises:
        FileNotFoundError: a loss owns state but the checkpoint has none (it was written without
            :func:`keep_loss_state`: resuming would restart the loss's heads from scratch).
        ValueError: the saved losses do not match the trainer's.
    """
    model = _unwrapped(trainer.model)
    losses = trainer_losses(trainer)
    stateful = {name for name, loss in losses.items() if loss_state_dict(loss, model)}
    if not stateful:
        return False
    path = os.path.join(os.fspath(folder), LOSS_STATE_FILE)
    if not os.path.isfile(path):
        names = ", ".join(type(losses[name]).__name__ for name in sorted(stateful))
        raise FileNotFoundError(
            f"{folder}: no {LOSS_STATE_FILE} in this checkpoint, but {names} own(s) trainable state (heads, "
            "learned weights or counters) that a resumed run needs. It was saved without "
            "st_contrast.checkpointing.keep_loss_state(trainer); resuming it would restart that state from "
            "scratch. Resume from a checkpoint written with keep_loss_state, or start the run again."
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = payload.get("losses", {}) if isinstance(payload, dict) else {}
    if set(saved) != stateful:
        raise ValueError(
            f"{path}: saved state for loss(es) {sorted(saved)}, but the trainer's stateful losses are "
            f"{sorted(stateful)}; build the trainer with the same losses as the run that wrote the checkpoint."
        )
    for name in sorted(stateful):
        load_loss_state_dict(losses[name], saved[name]["state"], model, where=path)
    logger.info("Restored the state of %d loss(es) from %s", len(stateful), path)
    return True


def _resolve_checkpoint(trainer: Any, resume_from_checkpoint: Any) -> str | None:
    """The folder ``trainer.train(resume_from_checkpoint=...)`` resumes from, as the Trainer itself resolves it."""
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(trainer.args.output_dir)
    return os.fspath(resume_from_checkpoint)


def _transformers_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class LossStateCallback(_transformers_callback_base()):
    """Saves the losses' state into each checkpoint and restores it on resume (see the module docs).

    Args:
        trainer: the Trainer whose losses to keep; callbacks are not handed the loss, so this one holds it.
    """

    def __init__(self, trainer: Any) -> None:
        super().__init__()
        self.trainer = trainer
        self.resume_from: str | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        folder = self.resume_from
        if folder is None and state.global_step > 0:  # resumed by a train() this callback did not see
            candidate = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            folder = candidate if os.path.isdir(candidate) else None
        if folder is not None:
            load_trainer_loss_state(self.trainer, folder)
        self.resume_from = None
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                save_trainer_loss_state(self.trainer, folder)
        return control


def _attach(trainer: Any) -> Any:
    if any(isinstance(callback, LossStateCallback) for callback in trainer.callback_handler.callbacks):
        return trainer
    callback = LossStateCallback(trainer)
    trainer.add_callback(callback)
    train = trainer.train

    @functools.wraps(train)
    def train_keeping_loss_state(resume_from_checkpoint: Any = None, *args: Any, **kwargs: Any):
        callback.resume_from = _resolve_checkpoint(trainer, resume_from_checkpoint)
        return train(resume_from_checkpoint, *args, **kwargs)

    trainer.train = train_keeping_loss_state
    return trainer


@contextlib.contextmanager
def _every_trainer() -> Iterator[None]:
    from sentence_transformers import SentenceTransformerTrainer

    original = SentenceTransformerTrainer.__init__

    @functools.wraps(original)
    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _attach(self)

    SentenceTransformerTrainer.__init__ = init
    try:
        yield
    finally:
        SentenceTransformerTrainer.__init__ = original


def keep_loss_state(trainer: Any = None) -> Any:
    """Keep the losses' own state in every checkpoint of ``trainer`` and restore it on resume.

    With a trainer: adds a :class:`LossStateCallback` and returns the trainer (calling it twice adds one).
    Without: a context manager under which every ``SentenceTransformerTrainer`` built gets one; this is
    the form for ``model.fit``, which builds its Trainer inside.
    """
    if trainer is None:
        return _every_trainer()
    return _attach(trainer)

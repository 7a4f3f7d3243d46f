"""Test helpers: two-step training runs through both sentence-transformers entry points, for every loss's tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def trainable_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of ``module``'s trainable parameters, by name (compare with :func:`changed_parameters`)."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def changed_parameters(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    """The names in ``before`` (a :func:`trainable_snapshot`) whose parameter in ``module`` changed since."""
    after = dict(module.named_parameters())
    return {name for name, value in before.items() if not torch.equal(value, after[name].detach())}


def fit_two_steps(model, loss: nn.Module, examples: Sequence, batch_size: int = 4, lr: float = 1e-3) -> set[str]:
    """Two optimiser steps with ``model.fit`` on ``InputExample``s; returns the names (in ``loss``) that changed."""
    from torch.utils.data import DataLoader

    before = trainable_snapshot(loss)
    loader = DataLoader(list(examples)[: 2 * batch_size], batch_size=batch_size, shuffle=False)
    model.fit(
        train_objectives=[(loader, loss)],
        epochs=1,
        steps_per_epoch=2,
        warmup_steps=0,
        optimizer_params={"lr": lr},
        show_progress_bar=False,
        use_amp=False,
    )
    return changed_parameters(before, loss)


def trainer_two_steps(model, loss: nn.Module, dataset, output_dir, batch_size: int = 4, lr: float = 1e-3) -> set[str]:
    """Two optimiser steps with ``SentenceTransformerTrainer``; returns the names (in ``loss``) that changed."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    before = trainable_snapshot(loss)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=2,
        learning_rate=lr,
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    trainer.train()
    return changed_parameters(before, loss)

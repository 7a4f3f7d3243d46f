"""One configuration's training step on the preset's device: model, loss, batch and optimiser, built once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks.harness.models import PRESETS, build_model, sentences_for


def to_device(value: Any, device) -> Any:
    """Tensors moved to ``device`` inside dicts (and tokenizers' BatchEncoding), lists and tuples."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def prepare(preset_name: str, name: str, batch_size: int, workdir: str | Path) -> tuple[Callable[[], None], bool]:
    """Model, loss, batch (on the device) and optimiser of configuration ``name`` (see
    :func:`benchmarks.factories.get_factory`): returns ``(step, is_cuda)``, where ``step()`` is one full training
    step (forward under the preset's autocast, backward, AdamW) that does not synchronise the device."""
    import torch

    from benchmarks.factories import get_factory

    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    model = build_model(preset, Path(workdir))
    loss, make_batch = get_factory(name)(model)
    if isinstance(loss, torch.nn.Module):
        loss.to(preset["device"])
        loss.train()
    device = torch.device(preset["device"])
    features, labels = to_device(make_batch(sentences_for(batch_size)), device)
    optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-5)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=preset["dtype"] == "bfloat16")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            value = loss([dict(f) for f in features], labels)
        if isinstance(value, dict):
            value = sum(value.values())
        value.backward()
        optimizer.step()

    return step, device.type == "cuda"

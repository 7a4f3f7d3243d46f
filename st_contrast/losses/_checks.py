"""The validators every loss (and the shared maths) uses: one wording for each rule."""

from __future__ import annotations


def check_temperature(temperature: float) -> float:
    """Validate a temperature, returning it as a float."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"temperature must be > 0 and finite, got {temperature!r}")
    return value

"""Alignment and uniformity (Wang and Isola 2020) against plain-loop references on hand-made vectors."""

from __future__ import annotations

import math

import pytest
import torch

from st_contrast.evaluation import alignment_loss, alignment_uniformity, uniformity_loss


def _loop_alignment(x, y, alpha=2.0):
    total = 0.0
    for i in range(len(x)):
        total += math.sqrt(sum((a - b) ** 2 for a, b in zip(x[i], y[i]))) ** alpha
    return total / len(x)


def _loop_uniformity(x, t=2.0):
    terms = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            terms.append(math.exp(-t * sum((a - b) ** 2 for a, b in zip(x[i], x[j]))))
    return math.log(sum(terms) / len(terms))


def _unit(rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("alpha", [2.0, 1.0, 3.5])
def test_alignment_matches_loop(alpha):
    generator = torch.Generator().manual_seed(0)
    x = _unit(torch.randn(7, 5, generator=generator).tolist())
    y = _unit(torch.randn(7, 5, generator=generator).tolist())
    expected = _loop_alignment(x.tolist(), y.tolist(), alpha)
    torch.testing.assert_close(alignment_loss(x, y, alpha), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize(("t", "block_size"), [(2.0, 4096), (2.0, 3), (0.5, 1), (40.0, 2)])
def test_uniformity_matches_loop(t, block_size):
    generator = torch.Generator().manual_seed(1)
    x = _unit(torch.randn(9, 4, generator=generator).tolist())
    got = uniformity_loss(x, t=t, block_size=block_size)
    torch.testing.assert_close(got, torch.tensor(_loop_uniformity(x.tolist(), t), dtype=torch.float64))


def test_known_values():
    # identical positives: alignment 0; antipodal pair: every distance^2 is 4, so uniformity = -4t
    x = _unit([[1.0, 0.0], [0.0, 1.0]])
    assert alignment_loss(x, x).item() == 0.0
    torch.testing.assert_close(
        uniformity_loss(_unit([[1.0, 0.0], [-1.0, 0.0]]), t=2.0).double(), torch.tensor(-8.0, dtype=torch.float64)
    )
    # collapsed embeddings: the worst uniformity, 0
    assert uniformity_loss(_unit([[1.0, 1.0]] * 5)).item() == pytest.approx(0.0, abs=1e-12)


def test_uniformity_does_not_underflow():
    x = _unit([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    value = uniformity_loss(x, t=1000.0)  # squared distances 4, 2, 2: log(2/3 e^-2000), exp() alone underflows
    assert torch.isfinite(value)
    torch.testing.assert_close(value, torch.tensor(-2000.0 + math.log(2 / 3), dtype=torch.float64))


def test_validation():
    with pytest.raises(ValueError, match="same shape"):
        alignment_loss(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="N >= 2"):
        uniformity_loss(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="t must be > 0"):
        uniformity_loss(torch.zeros(2, 3), t=0.0)


class _TableModel:
    """Encodes from a fixed table, like SentenceTransformer.encode(..., normalize_embeddings=True)."""

    def __init__(self, table):
        self.table = table
        self.encoded = []

    def encode(self, sentences, normalize_embeddings=False, convert_to_tensor=False, **kwargs):
        self.encoded.append(list(sentences))
        out = torch.tensor([self.table[s] for s in sentences], dtype=torch.float32)
        return torch.nn.functional.normalize(out, dim=-1) if normalize_embeddings else out


def test_alignment_uniformity_on_scored_pairs():
    table = {
        "a": [1.0, 0.0, 0.0],
        "b": [1.0, 1.0, 0.0],
        "c": [0.0, 0.0, 3.0],
        "d": [0.0, 2.0, -1.0],
        "e": [-1.0, 0.5, 0.0],
    }
    pairs = [("a", "b", 4.6), ("c", "d", 4.0), ("a", "e", 1.0), ("d", "b", 5.0)]
    model = _TableModel(table)
    result = alignment_uniformity(model, pairs)
    unit = {k: _unit([v])[0].tolist() for k, v in table.items()}
    # positives: score strictly higher than 4 (SimCSE: "higher than 4"); the 4.0 pair is not one
    expected_alignment = _loop_alignment([unit["a"], unit["d"]], [unit["b"], unit["b"]])
    expected_uniformity = _loop_uniformity([unit[k] for k in "abcde"])
    assert result["positive_pairs"] == 2 and result["sentences"] == 5
    assert result["alignment"] == pytest.approx(expected_alignment, rel=1e-5)
    assert result["uniformity"] == pytest.approx(expected_uniformity, rel=1e-5)
    assert model.encoded == [["a", "b", "c", "d", "e"]]  # each distinct sentence encoded once
    with pytest.raises(ValueError, match="higher than positive_threshold=4.0"):
        alignment_uniformity(model, [("a", "b", 4.0), ("c", "d", 1.0)])


def test_alignment_uniformity_with_a_real_model(tiny_model, data_dir):
    from st_contrast.evaluation import load_sts_benchmark

    pairs = load_sts_benchmark("dev", data_dir=data_dir)[:40]
    result = alignment_uniformity(tiny_model, pairs, batch_size=20)
    assert 0.0 <= result["alignment"] <= 4.0
    assert -4.0 <= result["uniformity"] <= 0.0

"""st_contrast.modules.entity_pooling: the instance vector from the two entity start markers."""

from __future__ import annotations

import pytest
import torch

from st_contrast.modules.entity_pooling import ENTITY_MARKERS, EntityMarkerPooling

IDS = [90, 91, 92, 93]  # head start, head end, tail start, tail end


def test_pools_the_first_head_and_tail_start_markers_through_the_linear_layer():
    torch.manual_seed(0)
    pooling = EntityMarkerPooling(4, IDS)
    input_ids = torch.tensor([[1, 90, 5, 91, 92, 6, 93, 2], [1, 7, 92, 8, 93, 90, 9, 91]])
    tokens = torch.randn(2, 8, 4)
    out = pooling({"input_ids": input_ids, "token_embeddings": tokens})["sentence_embedding"]
    expected = torch.stack(
        [
            pooling.linear(torch.cat([tokens[0, 1], tokens[0, 4]])),  # [E1] at 1, [E2] at 4
            pooling.linear(torch.cat([tokens[1, 5], tokens[1, 2]])),  # the order of the entities does not matter
        ]
    )
    torch.testing.assert_close(out, expected)
    assert pooling.get_embedding_dimension() == 8 and pooling.get_sentence_embedding_dimension() == 8


def test_rows_without_both_start_markers_are_named():
    pooling = EntityMarkerPooling(4, IDS)
    input_ids = torch.tensor([[1, 90, 92, 2], [1, 90, 5, 2], [1, 5, 6, 2]])
    with pytest.raises(ValueError, match=r"2 input\(s\) \(rows \[1, 2\] of the batch\) lack the head marker"):
        pooling.marker_positions(input_ids)


def test_bad_arguments():
    with pytest.raises(ValueError, match="embedding_dimension must be a positive integer"):
        EntityMarkerPooling(0, IDS)
    with pytest.raises(ValueError, match="needs 4 marker ids and 4 marker strings"):
        EntityMarkerPooling(4, IDS[:3])
    with pytest.raises(ValueError, match="must be distinct"):
        EntityMarkerPooling(4, [90, 90, 92, 93])


def test_save_and_load_round_trip(tmp_path):
    pooling = EntityMarkerPooling(4, IDS, bias=False)
    pooling.save(str(tmp_path))
    loaded = EntityMarkerPooling.load(str(tmp_path))
    assert loaded.marker_ids == IDS and loaded.markers == list(ENTITY_MARKERS) and loaded.bias is False
    torch.testing.assert_close(loaded.linear.weight, pooling.linear.weight)

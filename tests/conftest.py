"""Shared fixtures: tiny offline models, an echo model for loss maths, and a fake process group."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

torch.set_num_threads(1)

DATA_DIR = os.environ.get("ST_CONTRAST_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
if os.path.isdir(DATA_DIR):
    os.environ["ST_CONTRAST_DATA"] = os.path.abspath(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The real data folder (../shared/data or ST_CONTRAST_DATA); tests that need it fail loudly without it."""
    path = os.environ.get("ST_CONTRAST_DATA")
    if not path or not os.path.isdir(path):
        pytest.fail("real data folder not found: set ST_CONTRAST_DATA (the Makefile points it at ../shared/data)")
    return path


@pytest.fixture(scope="session")
def _tiny_bert_session(tmp_path_factory):
    from st_contrast.testing import build_tiny_sentence_transformer

    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-bert"), pooling="cls")


@pytest.fixture
def tiny_model(_tiny_bert_session):
    """A tiny random BERT SentenceTransformer with [CLS] pooling, fresh (deep-copied) for each test."""
    return copy.deepcopy(_tiny_bert_session)


@pytest.fixture(scope="session")
def _tiny_bert_mean_session(tmp_path_factory):
    from st_contrast.testing import build_tiny_sentence_transformer

    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-bert-mean"), pooling="mean")


@pytest.fixture
def tiny_model_mean(_tiny_bert_mean_session):
    """Like ``tiny_model`` with mean pooling."""
    return copy.deepcopy(_tiny_bert_mean_session)


@pytest.fixture(scope="session")
def _tiny_roberta_session(tmp_path_factory):
    from st_contrast.testing import build_tiny_sentence_transformer

    folder = tmp_path_factory.mktemp("tiny-roberta")
    return build_tiny_sentence_transformer(folder, pooling="cls", architecture="roberta")


@pytest.fixture
def tiny_roberta(_tiny_roberta_session):
    """A tiny random RoBERTa-architecture SentenceTransformer (WordPiece vocab), fresh for each test."""
    return copy.deepcopy(_tiny_roberta_session)


@pytest.fixture(scope="session")
def tiny_transformer_dir(tmp_path_factory):
    """Folder of a tiny BERT *with* an MLM head (for losses that load pretrained MLM weights)."""
    from st_contrast.testing import build_tiny_transformer

    return build_tiny_transformer(tmp_path_factory.mktemp("tiny-bert-mlm"), with_mlm_head=True)


class EchoModel(nn.Module):
    """A 'model' whose sentence embedding is the ``embedding`` tensor of its features, times a weight.

    Losses see exactly the embeddings a test hands in, so their maths can be compared with a
    reference; the scalar weight lets gradients be checked end to end.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        features = dict(features)
        features["sentence_embedding"] = features["embedding"] * self.weight
        return features

    def get_embedding_dimension(self) -> int:
        return 0


@pytest.fixture
def echo_model() -> EchoModel:
    return EchoModel()


def echo_features(*tensors: Tensor) -> list[dict[str, Tensor]]:
    """One feature dict per column, for :class:`EchoModel`."""
    return [{"embedding": t} for t in tensors]


class FakeProcessGroup:
    """Monkeypatch the gather helpers of ``st_contrast.losses.functional.distributed`` as if on ``rank`` of a group.

    ``others`` maps a rank to the tensors that rank would contribute, in call order; the local
    tensor is inserted at this rank's position (keeping its gradient), like the real gather.
    """

    def __init__(self, monkeypatch, rank: int, world_size: int, others: dict[int, list[Tensor]]):
        from st_contrast.losses import functional
        from st_contrast.losses.functional import distributed

        self.rank, self.world_size, self.others = rank, world_size, others
        self.calls = 0
        # the maths looks the helpers up on the `distributed` module at call time; the package's
        # re-exports are patched too, for code that calls them through `functional`
        for namespace in (distributed, functional):
            monkeypatch.setattr(namespace, "is_distributed", lambda: True)
            monkeypatch.setattr(namespace, "all_gather_with_grad", self.all_gather)
            monkeypatch.setattr(namespace, "local_offset", self.local_offset)

    def all_gather(self, tensor: Tensor) -> Tensor:
        parts = []
        for r in range(self.world_size):
            parts.append(tensor if r == self.rank else self.others[r][self.calls])
        self.calls += 1
        return torch.cat(parts, dim=0)

    def local_offset(self, local_size: int, device=None) -> int:
        return sum(self.others[r][0].shape[0] for r in range(self.rank)) if self.rank else 0


@pytest.fixture
def fake_process_group(monkeypatch):
    """Factory: ``fake_process_group(rank, world_size, others)`` -> :class:`FakeProcessGroup`."""

    def make(rank: int, world_size: int, others: dict[int, list[Tensor]]) -> FakeProcessGroup:
        return FakeProcessGroup(monkeypatch, rank, world_size, others)

    return make


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


@pytest.fixture
def sentences() -> list[str]:
    return list(SENTENCES)


def pytest_sessionfinish(session, exitstatus):
    """With ST_CONTRAST_NO_SKIPS=1 (set by `make test`), a skipped test fails the run: a skip is not a pass."""
    if os.environ.get("ST_CONTRAST_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(
            f"ST_CONTRAST_NO_SKIPS=1: {len(skipped)} test(s) were skipped (a missing dependency or data?); "
            "failing the run. Run `make setup` or set ST_CONTRAST_NO_SKIPS=0 to allow skips.",
            red=True,
        )
        session.exitstatus = 1

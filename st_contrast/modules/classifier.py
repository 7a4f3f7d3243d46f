"""A classification head that lives inside a SentenceTransformer, so it is saved and loaded with the model.

Supervised OOD detection (Zeng et al., 2021) scores test inputs with the maximum softmax probability
(MSP) of the trained classifier, and R-Drop trains a classifier; both need the head at test time.
:class:`ClassifierHead` is an ordinary sentence-transformers module: it reads ``sentence_embedding``,
leaves it unchanged (so the embedding-based detectors LOF and GDA see the same features) and writes
``logits``. ``model.encode(texts, output_value="logits")`` returns them.

Because the head is code from this package (not from ``sentence_transformers``), sentence-transformers
6 asks for ``trust_remote_code=True`` when loading a saved model that contains it::

    SentenceTransformer("path/to/saved", trust_remote_code=True)

It only imports ``st_contrast.modules.classifier.ClassifierHead`` from the installed package.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.losses._checks import check_positive_int, check_rate
from st_contrast.modeling import embedding_dimension, model_device

from ._base import ConfigModule


class ClassifierHead(ConfigModule):
    """``logits = W · dropout(sentence_embedding) + b``, written to ``features["logits"]``.

    Args:
        in_features: size of the sentence embedding.
        num_labels: number of classes.
        dropout: dropout on the embedding before the linear layer (active in training only; R-Drop
            relies on it together with the encoder's own dropout).
        labels: optional class names, index ``i`` naming class ``i``; saved with the model.
        init_std: standard deviation of the normal initialisation of ``W`` (``b`` starts at zero).
    """

    config_keys: list[str] = ["in_features", "num_labels", "dropout", "labels"]
    config_file_name: str = "config.json"

    def __init__(
        self,
        in_features: int,
        num_labels: int,
        dropout: float = 0.1,
        labels: list[str] | None = None,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        check_positive_int(in_features, "in_features")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2 (a classifier needs 2 classes), got {num_labels!r}")
        dropout = check_rate(dropout, "dropout", high_open=True)
        if labels is not None:
            labels = [str(label) for label in labels]
            if len(labels) != num_labels:
                raise ValueError(f"labels names {len(labels)} classes but num_labels is {num_labels}; they must agree")
        self.in_features = in_features
        self.num_labels = num_labels
        self.dropout = float(dropout)
        self.labels = labels
        self.drop = nn.Dropout(self.dropout)
        self.classifier = nn.Linear(in_features, num_labels)
        nn.init.normal_(self.classifier.weight, std=init_std)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: dict[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        embeddings = features["sentence_embedding"]
        features["logits"] = self.classifier(self.drop(embeddings))
        return features


def find_classifier_head(model: nn.Module) -> ClassifierHead | None:
    """The model's :class:`ClassifierHead`, or ``None`` when it has none."""
    for module in model.modules():
        if isinstance(module, ClassifierHead):
            return module
    return None


def ensure_classifier_head(
    model: nn.Module, num_labels: int | None, dropout: float = 0.1, labels: list[str] | None = None
) -> ClassifierHead:
    """Return the model's classifier head, appending a new one (last module) when it has none.

    An existing head is reused when ``num_labels`` is ``None`` or matches it; a mismatch is an error,
    because silently replacing a trained head would throw its weights away.
    """
    head = find_classifier_head(model)
    if head is not None:
        if num_labels is not None and head.num_labels != num_labels:
            raise ValueError(
                f"the model already has a ClassifierHead with {head.num_labels} classes, but num_labels={num_labels} "
                "was given. Pass num_labels=None to reuse it, or start from a model without a classifier head."
            )
        return head
    if num_labels is None:
        raise ValueError("the model has no ClassifierHead yet, so num_labels (the number of classes) is required")
    if not hasattr(model, "append"):
        raise ValueError("a classifier head can only be added to a SentenceTransformer (a model with .append)")
    dim = embedding_dimension(model)
    if not dim:
        raise ValueError("cannot add a classifier head: the model does not report its embedding dimension")
    head = ClassifierHead(int(dim), num_labels, dropout=dropout, labels=labels)
    head.train(model.training)
    device = model_device(model)
    if device is not None:
        head.to(device)
    model.append(head)
    return head


def logits_from_output(output: dict[str, Tensor], loss_name: str) -> Tensor:
    """``output["logits"]`` with a clear error when the model has no classifier head."""
    logits = output.get("logits")
    if not isinstance(logits, torch.Tensor):
        raise ValueError(
            f"{loss_name} needs classification logits, but the model's output has none: the model must end with a "
            "st_contrast.modules.ClassifierHead (the loss adds one when built with num_labels)."
        )
    return logits

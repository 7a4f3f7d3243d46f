"""What every st-contrast loss shares, written once: the model, the input checks, the config and the citation.

sentence-transformers' loss contract (see STYLE.md): the model is ``self.model`` (the Trainer swaps the
DDP-wrapped or compiled model into any child of that name), ``get_config_dict()`` and ``citation`` reach the
saved model card. :class:`ContrastiveLoss` gives every loss these from two class attributes:

- ``config_keys``: the attributes that ``get_config_dict()`` reports (a loss with derived entries, such as a
  view's ``repr``, extends the dict);
- ``CITATION``: the BibTeX of the method's paper(s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from ._checks import check_texts


class ContrastiveLoss(nn.Module):
    """Base of the st-contrast losses: ``self.model``, ``check_inputs``, ``get_config_dict`` and ``citation``.

    Args:
        model: the SentenceTransformer being trained, kept as ``self.model``.
        check_inputs: run the cheap per-batch input checks (empty texts); off only when profiling says so.
    """

    #: attribute names reported by :meth:`get_config_dict`, in order
    config_keys: ClassVar[tuple[str, ...]] = ()
    #: BibTeX of the method
    CITATION: ClassVar[str] = ""

    def __init__(self, model: nn.Module, check_inputs: bool = True) -> None:
        super().__init__()
        self.model = model
        self.check_inputs = check_inputs
        # special-token ids of the model's tokenizer, looked up by the first empty-text check
        self._special_ids: list[int] | None = None

    def check_texts(self, sentence_features: Sequence[dict[str, Any]]) -> None:
        """Refuse a batch holding empty texts (unless ``check_inputs`` is off), naming the loss, column and rows."""
        check_texts(self, sentence_features, type(self).__name__)

    def get_config_dict(self) -> dict[str, Any]:
        """The loss's settings, as sentence-transformers writes them into the model card."""
        return {key: getattr(self, key) for key in self.config_keys}

    @property
    def citation(self) -> str:
        return self.CITATION

"""CLINE: contrastive learning with semantic negative examples (MLM + replaced-token detection + contrast)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder, model_device, tokenizer_of
from st_contrast.modules.mlm import MLMHead, mask_tokens, tokenizer_ids
from st_contrast.modules.rtd import RTDHead
from st_contrast.views.alignment import IGNORE, TokenAligner
from st_contrast.views.rtd import RTDLabeler

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_no_labels, check_non_negative, check_rate
from ._common import for_wrapper, merge_features, refuse_wrappers

Objective = Literal["paper", "official"]

# RTD classes of the official code's three-way detection (kept tokens are 0, views.alignment.KEPT)
REPLACED_IN_SYNONYM, REPLACED_IN_ANTONYM = 1, 2


class CLINELoss(ContrastiveLoss):
    config_keys = ("mlm_weight", "rtd_weight", "contrastive_weight", "objective", "mlm_probability")
    CITATION = """
@inproceedings{wang2021cline,
    title = "{CLINE}: Contrastive Learning with Semantic Negative Examples for Natural Language Understanding",
    author = "Wang, Dong and Ding, Ning and Li, Piji and Zheng, Haitao",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics and the
                 11th International Joint Conference on Natural Language Processing (Volume 1: Long Papers)",
    year = "2021",
    url = "https://arxiv.org/abs/2107.00440",
}
"""

    def __init__(
        self,
        model: nn.Module,
        mlm_weight: float = 1.0,
        rtd_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        objective: Objective = "paper",
        mlm_probability: float = 0.15,
        load_pretrained_mlm_head: bool = True,
        check_inputs: bool = True,
        rtd_labels: Literal["all", "content"] = "all",
        content_word: Any | None = None,
    ) -> None:
        """CLINE (Wang, Ding, Li, Zheng, ACL 2021): contrast a sentence with a synonym and an antonym rewrite.

        Each example is a triple ``(x, x_syn, x_ant)`` made by :class:`st_contrast.views.wordnet.WordNetRewriter`
        (``x_syn`` keeps the meaning of ``x``; ``x_ant`` contradicts it). The three columns go through the
        encoder in one forward pass over the ``3B`` sentences, and three losses are combined:

        - **MLM** on ``x``: BERT masking (15%, 80/10/10) and a masked-language-model head tied to the input
          embeddings (pretrained head weights are loaded when the checkpoint has them). The sentence
          embedding of ``x`` is taken from this masked pass, as in the official code; with
          ``mlm_weight=0`` nothing is masked.
        - **RTD** (replaced-token detection) on ``x_syn`` and ``x_ant``: a token head predicts which tokens
          were replaced. The labels are recovered inside the loss by aligning the token ids of each
          rewrite with those of ``x`` (see :class:`TokenAligner`), so plain text columns are enough.
        - **Sentence contrast** between ``h = sentence_embedding(x)`` and the two rewrites.

        ``objective="paper"`` (default), the paper's equations:
        ``L_cts = -log( f(x, x_syn) / (f(x, x_syn) + f(x, x_ant)) )`` with ``f(a, b) = exp(h_a · h_b)``;
        binary RTD (BCE per token, replaced vs kept, over both rewrites); total
        ``mlm_weight·L_mlm + rtd_weight·L_rtd + contrastive_weight·L_cts``.

        ``objective="official"``, the released code: ``L_cts`` is binary cross-entropy on
        ``σ(mean(h ⊙ h'))`` (target 1 for ``x_syn``, 0 for ``x_ant``); RTD has three classes (kept /
        replaced in ``x_syn`` / replaced in ``x_ant``); the terms are combined with learned uncertainty
        weights ``Σ exp(-s_i)·w_i·L_i + max(s_i, 0)`` (``s`` = :attr:`log_vars`, trained, initialised at 0).

        The returned dict holds the weighted terms (``"mlm"``, ``"rtd"``, ``"contrastive"``); their sum is
        the loss, and the Trainer logs each. Terms with weight 0 are left out and cost nothing.

        Args:
            model: the SentenceTransformer to train (a Hugging Face encoder with a mask token for MLM).
            mlm_weight: weight of the MLM term (``>= 0``).
            rtd_weight: weight of the replaced-token-detection term (``>= 0``).
            contrastive_weight: weight of the sentence contrast (``>= 0``).
            objective: ``"paper"`` or ``"official"`` (see above).
            mlm_probability: fraction of the tokens of ``x`` masked for MLM, in ``(0, 1)``.
            load_pretrained_mlm_head: start the MLM head from the checkpoint's head weights when present.
            check_inputs: reject batches with empty texts.
            rtd_labels: which tokens of the rewrites RTD is trained on: ``"all"`` (default; the paper's
                token-level detection) or ``"content"`` (the official code: only content words, the
                others ignored). Every token of a replaced span is labelled replaced either way
                (:class:`st_contrast.views.rtd.RTDLabeler`).
            content_word: for ``rtd_labels="content"``, ``word -> bool``; default: the word is a content
                word of :class:`~st_contrast.views.wordnet.WordNetLexicon` (needs WordNet).

        References:
            - Wang, Ding, Li, Zheng. CLINE: Contrastive Learning with Semantic Negative Examples for Natural
              Language Understanding. ACL 2021. https://arxiv.org/abs/2107.00440
            - Official code: https://github.com/kandorm/CLINE (``src/lecbert/modeling.py``).

        Requirements:
            1. Triples ``(original, synonym, antonym)``, e.g. from :func:`st_contrast.data.cline_dataset`.
            2. For MLM/RTD, a Hugging Face encoder whose tokenizer has a mask token.

        Inputs:
            +-------------------------------------------+--------+-------------------------------------------+
            | Texts                                     | Labels | Notes                                     |
            +===========================================+========+===========================================+
            | (original, synonym rewrite, antonym       | none   | rewrites differ from the original only in |
            | rewrite) triples                          |        | replaced words (the RTD labels come from  |
            |                                           |        | aligning the token ids)                   |
            +-------------------------------------------+--------+-------------------------------------------+

        Relations:
            - The sentence contrast has one negative per anchor (its own antonym rewrite) and no
              in-batch negatives, unlike :class:`SimCSELoss`.
            - :class:`st_contrast.losses.DeCLUTRLoss` shares the MLM head and masking.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.data import cline_dataset
                from st_contrast.losses import CLINELoss

                model = SentenceTransformer("path/to/bert")
                train_dataset = cline_dataset(sentences, seed=0)   # columns: original, synonym, antonym
                loss = CLINELoss(model)
                SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
        """
        super().__init__(model, check_inputs)
        self.mlm_weight = check_non_negative(mlm_weight, "mlm_weight")
        self.rtd_weight = check_non_negative(rtd_weight, "rtd_weight")
        self.contrastive_weight = check_non_negative(contrastive_weight, "contrastive_weight")
        if not (self.mlm_weight or self.rtd_weight or self.contrastive_weight):
            raise ValueError("CLINELoss needs at least one of mlm_weight, rtd_weight, contrastive_weight to be > 0")
        if objective not in ("paper", "official"):
            raise ValueError(f"objective must be 'paper' or 'official', got {objective!r}")
        self.objective = objective
        self.mlm_probability = check_rate(mlm_probability, "mlm_probability", low_open=True, high_open=True)
        self.check_inputs = check_inputs
        if rtd_labels not in ("all", "content"):
            raise ValueError(
                f"rtd_labels must be 'all' (every token, paper) or 'content' (content words only, official code), "
                f"got {rtd_labels!r}"
            )

        self.mlm_head: MLMHead | None = None
        self.rtd_head: RTDHead | None = None
        self._mask_ids: dict[str, Any] | None = None
        self._aligner: TokenAligner | None = None
        self._labeler: RTDLabeler | None = None
        if self.mlm_weight:
            self._mask_ids = tokenizer_ids(model)
            self.mlm_head = MLMHead.from_model(model, load_pretrained=load_pretrained_mlm_head)
        if self.rtd_weight:
            tokenizer = tokenizer_of(model, "replaced-token detection (use rtd_weight=0 without one)")
            self._aligner = TokenAligner(tokenizer)
            self._labeler = RTDLabeler(self._aligner, tokenizer, labels=rtd_labels, content_word=content_word)
            self.rtd_head = RTDHead.from_model(model, num_labels=1 if objective == "paper" else 3)
        self.rtd_labels_mode = rtd_labels
        self.log_vars: nn.Parameter | None = None
        if objective == "official":
            self.log_vars = nn.Parameter(torch.zeros(3, device=model_device(model)))

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        features = [dict(f) for f in sentence_features]
        refuse_wrappers(
            self.model,
            "CLINELoss",
            {
                "AdaptiveLayerLoss": "CLINE masks and replaces tokens anew (in new feature dicts) on every call, and "
                "the wrapper reuses the first call's hidden states through the caller's feature dicts"
            },
        )
        if len(features) != 3:
            raise ValueError(
                f"CLINELoss expects 3 text columns (original, synonym rewrite, antonym rewrite), got {len(features)}. "
                "Build the triples with st_contrast.data.cline_dataset(sentences)."
            )
        check_no_labels(labels, "CLINELoss", "the dataset should hold only the original, synonym and antonym columns.")
        sizes = {_rows(f) for f in features}
        if len(sizes) != 1:
            raise ValueError(f"CLINELoss: the three columns must have the same number of rows, got {sorted(sizes)}")
        self.check_texts(features)
        needs_tokens = bool(self.mlm_weight or self.rtd_weight)
        if needs_tokens and any("input_ids" not in f or "attention_mask" not in f for f in features):
            raise ValueError("CLINELoss's MLM and RTD terms need tokenized columns (input_ids and attention_mask)")

        original_ids = features[0].get("input_ids")
        mlm_labels = None
        if self.mlm_weight:
            assert self._mask_ids is not None
            masked, mlm_labels = mask_tokens(
                original_ids,
                features[0]["attention_mask"],
                self._mask_ids["mask_token_id"],
                self._mask_ids["vocab_size"],
                self._mask_ids["special_ids"],
                probability=self.mlm_probability,
            )
            features[0]["input_ids"] = masked
        rtd_labels = None
        if self.rtd_weight:
            rtd_labels = self.rtd_labels(features[0]["attention_mask"], original_ids, features[1], features[2])

        sentence_embeddings, token_embeddings = self._encode(features, needs_tokens)
        return for_wrapper(
            self.model,
            self.compute_loss_from_embeddings(sentence_embeddings, token_embeddings, mlm_labels, rtd_labels),
        )

    def rtd_labels(
        self, original_mask: Tensor, original_ids: Tensor, synonym: dict[str, Tensor], antonym: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Token labels of the two rewrites: replaced = 1 (paper) or 1 / 2 (official: syn / ant), kept = 0."""
        assert self._labeler is not None
        antonym_value = REPLACED_IN_SYNONYM if self.objective == "paper" else REPLACED_IN_ANTONYM
        return (
            self._labeler.batch_labels(
                original_ids, original_mask, synonym["input_ids"], synonym["attention_mask"], REPLACED_IN_SYNONYM
            ),
            self._labeler.batch_labels(
                original_ids, original_mask, antonym["input_ids"], antonym["attention_mask"], antonym_value
            ),
        )

    def _encode(self, features: list[dict[str, Tensor]], needs_tokens: bool) -> tuple[list[Tensor], list[Tensor]]:
        """One forward over the three columns (padded to a common width); per-column outputs, unpadded."""
        merged = merge_features(features)
        if merged is None:
            outputs = [self.model(f) for f in features]
            sentences = [o["sentence_embedding"] for o in outputs]
            tokens = [o.get("token_embeddings") for o in outputs] if needs_tokens else []
        else:
            output = self.model(merged)
            sentences = list(output["sentence_embedding"].reshape(3, -1, *output["sentence_embedding"].shape[1:]))
            tokens = []
            if needs_tokens:
                token_output = output.get("token_embeddings")
                if token_output is None:
                    raise ValueError("CLINELoss needs the model to return token_embeddings for MLM and RTD")
                token_output = token_output.reshape(3, -1, *token_output.shape[1:])
                tokens = [token_output[i, :, : features[i]["input_ids"].shape[1]] for i in range(3)]
        return sentences, tokens

    def compute_loss_from_embeddings(
        self,
        sentence_embeddings: Sequence[Tensor],
        token_embeddings: Sequence[Tensor] | None = None,
        mlm_labels: Tensor | None = None,
        rtd_labels: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The loss terms from computed embeddings.

        Args:
            sentence_embeddings: ``[h, h_syn, h_ant]``, each ``(B, D)``.
            token_embeddings: last-layer token states ``[x (masked), x_syn, x_ant]``, each ``(B, L_i, H)``
                (needed for MLM and RTD).
            mlm_labels: ``(B, L_0)`` token ids to predict at masked positions of ``x``, -100 elsewhere.
            rtd_labels: ``(B, L_1)`` and ``(B, L_2)`` labels of the rewrites' tokens, -100 where ignored.
        """
        terms: dict[str, Tensor] = {}
        if self.mlm_weight:
            if token_embeddings is None or mlm_labels is None:
                raise ValueError("the MLM term needs token embeddings and MLM labels")
            assert self.mlm_head is not None
            embedding_weight = hf_encoder(self.model).get_input_embeddings().weight
            terms["mlm"] = self.mlm_head.loss(token_embeddings[0], mlm_labels, embedding_weight, loss_name="CLINELoss")
        if self.rtd_weight:
            if token_embeddings is None or rtd_labels is None:
                raise ValueError("the RTD term needs token embeddings and RTD labels")
            terms["rtd"] = self._rtd_loss(token_embeddings[1], token_embeddings[2], rtd_labels)
        if self.contrastive_weight:
            h, h_syn, h_ant = sentence_embeddings
            if self.objective == "paper":
                terms["contrastive"] = functional.cline_contrast_loss(h, h_syn, h_ant)
            else:
                terms["contrastive"] = functional.cline_official_contrast_loss(h, h_syn, h_ant)
        weights = {"mlm": self.mlm_weight, "rtd": self.rtd_weight, "contrastive": self.contrastive_weight}
        if self.objective == "paper":
            return {name: weights[name] * value for name, value in terms.items()}
        assert self.log_vars is not None
        index = {"mlm": 0, "rtd": 1, "contrastive": 2}  # fixed slots, whichever terms are on
        return {
            name: functional.uncertainty_weighted_terms([weights[name] * value], self.log_vars[index[name] :])[0]
            for name, value in terms.items()
        }

    def _rtd_loss(self, synonym_tokens: Tensor, antonym_tokens: Tensor, labels: tuple[Tensor, Tensor]) -> Tensor:
        assert self.rtd_head is not None
        logits = [self.rtd_head(synonym_tokens), self.rtd_head(antonym_tokens)]
        if self.objective == "paper":
            flat_logits = torch.cat([lg.reshape(-1) for lg in logits])
            flat_labels = torch.cat([lb.reshape(-1) for lb in labels])
            keep = flat_labels != IGNORE
            if not bool(keep.any()):
                return flat_logits.sum() * 0.0
            return F.binary_cross_entropy_with_logits(flat_logits[keep], flat_labels[keep].to(flat_logits.dtype))
        flat_logits = torch.cat([lg.reshape(-1, lg.shape[-1]) for lg in logits])
        flat_labels = torch.cat([lb.reshape(-1) for lb in labels])
        if not bool((flat_labels != IGNORE).any()):
            return flat_logits.sum() * 0.0
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "rtd_labels": self.rtd_labels_mode}


def _rows(features: dict[str, Any]) -> int:
    for value in features.values():
        if isinstance(value, Tensor) and value.ndim >= 1:
            return int(value.shape[0])
    return 0

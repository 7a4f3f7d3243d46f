"""CIL: contrastive instance learning for distantly supervised relation extraction (Chen et al., ACL 2021)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder, tokenizer_of
from st_contrast.modules.bag_attention import BagAttentionClassifier
from st_contrast.modules.mlm import MLMHead, mask_tokens, tokenizer_ids

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_int, check_integer_labels, check_non_negative, check_rate, check_temperature
from ._common import embed_merged, for_wrapper, merge_features, refuse_wrappers

NegativesRule = Literal["other_bags", "official"]
Anchors = Literal["first", "all"]
MLMSentences = Literal["first", "all"]
MLMProtected = Literal["entities", "start_markers"]

#: what ``official=True`` turns on (each can still be set on its own; an explicit argument wins)
OFFICIAL_CIL = {
    "detach_query": True,
    "bag_dropout": 0.5,
    "anchors": "all",
    "first_step": 1,
    "mlm_sentences": "all",
    "mlm_protected": "start_markers",
}
_PAPER_CIL = {
    "detach_query": False,
    "bag_dropout": 0.0,
    "anchors": "first",
    "first_step": 0,
    "mlm_sentences": "first",
    "mlm_protected": "entities",
}


def cil_ramp(step: int, warmup_steps: int) -> float:
    """CIL's weight ramp ``α(t) = 2 / (1 + exp(-2p)) - 1`` with ``p = t / (2·warmup_steps)`` (1 without warmup)."""
    if warmup_steps <= 0:
        return 1.0
    p = float(step) / (2.0 * float(warmup_steps))
    return 2.0 / (1.0 + math.exp(-2.0 * p)) - 1.0


class CILLoss(ContrastiveLoss):
    config_keys = (
        "num_relations",
        "temperature",
        "contrastive_weight",
        "mlm_weight",
        "warmup_steps",
        "negatives",
        "gather_across_devices",
        "mlm_probability",
        "official",
        "detach_query",
        "bag_dropout",
        "anchors",
        "first_step",
        "mlm_sentences",
        "mlm_protected",
    )
    CITATION = """
@inproceedings{chen-etal-2021-cil,
    title = "{CIL}: Contrastive Instance Learning Framework for Distantly Supervised Relation Extraction",
    author = "Chen, Tao and Shi, Haizhou and Tang, Siliang and Chen, Zhigang and Wu, Fei and Zhuang, Yueting",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics",
    year = "2021",
    pages = "6191--6200",
    url = "https://aclanthology.org/2021.acl-long.483",
}
"""

    def __init__(
        self,
        model: nn.Module,
        num_relations: int,
        temperature: float = 0.05,
        contrastive_weight: float = 10.0,
        mlm_weight: float = 0.1,
        warmup_steps: int = 500,
        negatives: NegativesRule = "other_bags",
        mlm_probability: float = 0.15,
        load_pretrained_mlm_head: bool = True,
        gather_across_devices: bool = False,
        check_inputs: bool = True,
        official: bool = False,
        detach_query: bool | None = None,
        bag_dropout: float | None = None,
        anchors: Anchors | None = None,
        first_step: int | None = None,
        mlm_sentences: MLMSentences | None = None,
        mlm_protected: MLMProtected | None = None,
    ) -> None:
        """CIL (Chen et al., ACL 2021): bag-level relation classification plus contrastive instance learning.

        Each training row is a bag of ``k`` sentences of one entity pair (or a pseudo-bag of one relation)
        with entity markers, plus the TF-IDF positive view of the bag's first sentence. The encoder
        (a SentenceTransformer ending in :class:`~st_contrast.modules.entity_pooling.EntityMarkerPooling`)
        gives instance vectors ``x``; selective attention gives the bag vector ``B`` and the bag
        cross-entropy. The instance ``x_j`` (the bag's first sentence) must pick its augmented copy
        ``x*_j`` against the other bags of the batch; an MLM loss on ``x_j`` (entity markers and mentions
        never masked) keeps the encoder's language knowledge:

        ``L = CE_bag + α(t)·λ_c·InfoNCE + λ_m·MLM``,
        ``InfoNCE_j = -log e(x_j, x*_j) / (e(x_j, x*_j) + Σ_{i≠j} e(x_j, B_i))``, ``e(a, b) = exp(cos(a, b)/τ)``,
        ``α(t) = 2/(1 + exp(-2p)) - 1``, ``p = t / (2·warmup_steps)``, ``t`` the number of training
        forward calls so far (:attr:`step`; counted only while gradients are enabled).

        All ``k + 1`` columns are embedded in one forward pass; the MLM adds one forward of the masked
        first column through the encoder.

        Args:
            model: a relation encoder from :func:`st_contrast.modules.entity_pooling.build_relation_encoder`.
            num_relations: number of relation classes (label ids ``0 .. num_relations - 1``).
            temperature: ``τ`` of the InfoNCE (paper: 0.05).
            contrastive_weight: ``λ_c`` (paper: 10). 0 skips the augmented column and the InfoNCE.
            mlm_weight: ``λ_m`` (paper: 0.1). 0 skips the MLM forward.
            warmup_steps: steps of the ``α(t)`` ramp (paper code: 500); 0 gives ``α = 1`` throughout.
            negatives: ``"other_bags"``: the paper's denominator, for instance ``j`` summed over the other bags;
                ``"official"``: the official code's axis, the instance × bag similarity matrix summed over its
                other axis (``Σ_{i≠j} e(x_i, B_j)``), which METHODS.md records as a bug the code itself notes.
            mlm_probability: fraction of non-entity tokens picked for MLM (80/10/10 masking).
            load_pretrained_mlm_head: start the MLM head from the checkpoint's MLM weights when it has them.
            gather_across_devices: in multi-process training (DDP), the contrastive term's negatives (the other
                bags, or for ``negatives="official"`` the other instances) come from every process, with gradients
                to their owners; loss and gradients equal one process on the concatenated batch (tested). The bag
                cross-entropy and MLM are per example, so DDP's averaging already makes them global.
            check_inputs: check each batch for empty texts.
            official: the preset of the official code's details below (:data:`OFFICIAL_CIL`); each of them
                given explicitly wins over the preset. ``negatives`` is not part of it (see above).
            detach_query: attend with the classifier weight's data (official ``fc.weight.data``), so the
                classifier weight gets no gradient through the attention. Default False.
            bag_dropout: dropout on the bag vector before the classifier (official 0.5). Default 0.
            anchors: ``"first"`` (default): the bag's first sentence is the InfoNCE anchor and the row has one
                ``augmented`` column; ``"all"`` (official): every sentence of the bag is an anchor, each with
                its own augmented view, the row being ``(sentence_1..k, augmented_1..k)``
                (``cil_dataset(..., augment_all=True)``); the loss is the mean over the ``B·k`` anchors.
            first_step: the ramp's ``t`` for the first training call: 0 (default, ``α = 0`` on the first
                step) or 1 (official: the counter starts at 1). :attr:`step` still counts calls.
            mlm_sentences: ``"first"`` (default): MLM on the bag's first sentence; ``"all"`` (official): on
                every sentence of the bag (``k`` rows through the encoder, one mean over all masked tokens).
            mlm_protected: ``"entities"`` (default): markers and mentions never masked; ``"start_markers"``
                (official): only the two start markers (the pooled positions) are protected.

        References:
            - Chen, Shi, Tang, Chen, Wu, Zhuang. CIL: Contrastive Instance Learning Framework for Distantly
              Supervised Relation Extraction. ACL 2021. https://aclanthology.org/2021.acl-long.483
            - Lin, Shen, Liu, Luan, Sun. Neural Relation Extraction with Selective Attention over Instances.
              ACL 2016. https://aclanthology.org/P16-1200

        Requirements:
            1. A model built with ``build_relation_encoder`` (entity marker tokens + ``EntityMarkerPooling``).
            2. At least 2 bags per batch when ``contrastive_weight > 0`` (the other bags are the negatives).
            3. Integer relation labels in ``[0, num_relations)``.

        Inputs:
            +---------------------------------------------------+------------------+------------------------------+
            | Texts                                             | Labels           | Notes                        |
            +===================================================+==================+==============================+
            | (sentence_1, ..., sentence_k, augmented), k >= 1  | relation id (int)| one row per bag; sentence_1  |
            |                                                   |                  | is the anchor, augmented its |
            |                                                   |                  | TF-IDF view                  |
            +---------------------------------------------------+------------------+------------------------------+

            Every text carries the entity markers (``st_contrast.data.relation.cil_dataset`` /
            ``cil_examples`` build these rows, filling small bags by repetition). With ``anchors="all"`` the
            row is ``(sentence_1, ..., sentence_k, augmented_1, ..., augmented_k)``
            (``cil_dataset(..., augment_all=True)``).

        Relations:
            - With ``contrastive_weight=0`` and ``mlm_weight=0`` this is plain selective-attention bag
              classification (the "bag CE alone" baseline).
            - The bag classifier lives in :attr:`bag_classifier`; save it with ``loss.bag_classifier.save(folder)``
              and evaluate with :func:`st_contrast.evaluation.relation.evaluate_relation_extraction`.

        Example:
            ::

                from sentence_transformers import SentenceTransformerTrainer
                from st_contrast.data.relation import (cil_dataset, pseudo_bags, read_fewrel_nyt, relation_ids)
                from st_contrast.losses import CILLoss
                from st_contrast.modules.entity_pooling import build_relation_encoder
                from st_contrast.views import TfidfSubstitution

                instances = read_fewrel_nyt()
                rel2id = relation_ids(instances)
                model = build_relation_encoder("path/to/bert")
                view = TfidfSubstitution().fit(instances)
                dataset = cil_dataset(pseudo_bags(instances, size=4), rel2id, bag_size=4, augment=view)
                loss = CILLoss(model, num_relations=len(rel2id))
                SentenceTransformerTrainer(model=model, train_dataset=dataset, loss=loss).train()
        """
        super().__init__(model, check_inputs)
        from st_contrast.modules.entity_pooling import find_entity_pooling

        self.num_relations = check_int(num_relations, "num_relations", minimum=2)
        self.temperature = check_temperature(temperature)
        self.contrastive_weight = check_non_negative(contrastive_weight, "contrastive_weight")
        self.mlm_weight = check_non_negative(mlm_weight, "mlm_weight")
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)
        if negatives not in ("other_bags", "official"):
            raise ValueError(f"negatives must be 'other_bags' (the paper) or 'official' (the code), got {negatives!r}")
        self.negatives = negatives
        chosen = {
            "detach_query": detach_query,
            "bag_dropout": bag_dropout,
            "anchors": anchors,
            "first_step": first_step,
            "mlm_sentences": mlm_sentences,
            "mlm_protected": mlm_protected,
        }
        self.official = bool(official)
        preset = OFFICIAL_CIL if self.official else _PAPER_CIL
        options = {key: preset[key] if value is None else value for key, value in chosen.items()}
        self.detach_query = bool(options["detach_query"])
        self.bag_dropout = check_rate(options["bag_dropout"], "bag_dropout", high_open=True)
        for key, allowed in (
            ("anchors", ("first", "all")),
            ("mlm_sentences", ("first", "all")),
            ("mlm_protected", ("entities", "start_markers")),
        ):
            if options[key] not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {options[key]!r}")
        self.anchors: str = options["anchors"]
        self.mlm_sentences: str = options["mlm_sentences"]
        self.mlm_protected: str = options["mlm_protected"]
        if options["first_step"] not in (0, 1) or isinstance(options["first_step"], bool):
            raise ValueError(f"first_step must be 0 (ours) or 1 (the official counter), got {options['first_step']!r}")
        self.first_step = int(options["first_step"])
        if self.anchors == "all" and self.negatives == "official":
            raise ValueError(
                "negatives='official' (the transposed sum) is defined for one anchor per bag; with anchors='all' use "
                "negatives='other_bags'"
            )
        self.mlm_probability = check_rate(mlm_probability, "mlm_probability", low_open=True, high_open=True)
        self.gather_across_devices = bool(gather_across_devices)
        pooling = find_entity_pooling(model)
        self.marker_ids: list[int] = list(pooling.marker_ids)
        dim = pooling.get_embedding_dimension()
        reference = next(iter(pooling.parameters()), None)
        self.bag_classifier = BagAttentionClassifier(
            dim, num_relations, detach_query=self.detach_query, dropout=self.bag_dropout
        )
        if reference is not None:
            self.bag_classifier.to(device=reference.device, dtype=reference.dtype)
        self.mlm_head: MLMHead | None = None
        self._mlm_ids: dict[str, Any] = {}
        if self.mlm_weight > 0:
            self.mlm_head = MLMHead.from_model(model, load_pretrained=load_pretrained_mlm_head)
            self.mlm_head.to(dtype=hf_encoder(model).get_input_embeddings().weight.dtype)
            self._mlm_ids = tokenizer_ids(model)
            tokenizer = tokenizer_of(model)
            if tokenizer is not None and len(tokenizer) > self._mlm_ids["vocab_size"]:
                raise ValueError(
                    f"the tokenizer has {len(tokenizer)} tokens but the encoder's embedding matrix only "
                    f"{self._mlm_ids['vocab_size']} rows; build the model with build_relation_encoder, which resizes "
                    "it"
                )
        #: training forward calls so far (drives α(t)); saved in ``state_dict()``, so it travels with checkpoints
        self.step = 0

    def get_extra_state(self) -> dict[str, int]:
        """The :attr:`step` counter, kept in ``state_dict()`` (and so in every checkpoint's loss state)."""
        return {"step": int(self.step)}

    def set_extra_state(self, state: Any) -> None:
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"CILLoss: the saved state must hold an integer step >= 0, got {state!r}")
        self.step = step

    # ------------------------------------------------------------------ forward

    def alpha(self, step: int | None = None) -> float:
        """``α(t)`` at counter value ``step`` (default: the current :attr:`step`), ``t = step + first_step``."""
        return cil_ramp((self.step if step is None else step) + self.first_step, self.warmup_steps)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        sentence_features = list(sentence_features)
        if len(sentence_features) < 2:
            raise ValueError(
                f"CILLoss expects one row per bag with columns (sentence_1, ..., sentence_k, augmented), k >= 1, got "
                f"{len(sentence_features)} column(s). Build the rows with st_contrast.data.relation.cil_dataset."
            )
        refuse_wrappers(
            self.model,
            "CILLoss",
            {
                "MatryoshkaLoss": "its train-only bag-attention classifier takes full-width embeddings, and the "
                "wrapper truncates them"
            },
        )
        labels = self._check_labels(labels, sentence_features[0]["input_ids"].shape[0])
        self.check_texts(sentence_features)
        k = self._bag_size(len(sentence_features))
        use_contrastive = self.contrastive_weight > 0
        columns = sentence_features if use_contrastive else sentence_features[:k]
        embeddings = embed_merged(self.model, columns)
        if not use_contrastive:
            # placeholders; never used without the contrastive term
            embeddings = [*embeddings, *embeddings[: len(sentence_features) - k]]
        losses = self.compute_loss_from_embeddings(embeddings, labels)
        if self.mlm_head is not None:
            mlm_columns = sentence_features[:k] if self.mlm_sentences == "all" else sentence_features[:1]
            losses["mlm"] = self.mlm_weight * self._mlm_loss(mlm_columns)
        if torch.is_grad_enabled():
            self.step += 1
        return for_wrapper(self.model, losses)

    def _bag_size(self, columns: int) -> int:
        """``k`` from the number of columns: ``k + 1`` (``anchors="first"``) or ``2k`` (``anchors="all"``)."""
        if self.anchors == "all":
            if columns < 2 or columns % 2:
                raise ValueError(
                    f"CILLoss(anchors='all') expects columns (sentence_1..k, augmented_1..k), an even number, got "
                    f"{columns}. Build the rows with st_contrast.data.relation.cil_dataset(..., augment_all=True)."
                )
            return columns // 2
        return columns - 1

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor) -> dict[str, Tensor]:
        """Bag CE and the weighted InfoNCE from ``[sentence_1, ..., sentence_k, augmented]`` embeddings.

        With ``anchors="all"``: ``[sentence_1, ..., sentence_k, augmented_1, ..., augmented_k]``.
        """
        if len(embeddings) < 2:
            raise ValueError(f"CILLoss needs k >= 1 sentence embeddings and the augmented one, got {len(embeddings)}")
        k = self._bag_size(len(embeddings))
        instances = torch.stack(list(embeddings[:k]), dim=1)  # (B, k, D)
        logits, bags = self.bag_classifier(instances, labels)
        losses = {"bag_ce": F.cross_entropy(logits, labels)}
        if self.contrastive_weight > 0:
            if bags.shape[0] < 2 and not (self.gather_across_devices and functional.is_distributed()):
                raise ValueError(
                    f"CILLoss needs at least 2 bags per batch (the other bags are the negatives), got "
                    f"{bags.shape[0]}. "
                    "Use a larger batch size or drop_last=True."
                )
            if self.anchors == "all":
                # every instance x_jk against its own view x*_jk and the other bags: one mean over B·k anchors
                contrastive = torch.stack(
                    [
                        functional.cil_contrastive_loss(
                            embeddings[i],
                            embeddings[k + i],
                            bags,
                            self.temperature,
                            self.negatives,
                            self.gather_across_devices,
                        )
                        for i in range(k)
                    ]
                ).mean()
            else:
                contrastive = functional.cil_contrastive_loss(
                    embeddings[0], embeddings[-1], bags, self.temperature, self.negatives, self.gather_across_devices
                )
            losses["contrastive"] = self.alpha() * self.contrastive_weight * contrastive
        return losses

    def _check_labels(self, labels: Tensor | None, batch_size: int) -> Tensor:
        if labels is None or not isinstance(labels, Tensor) or labels.numel() == 0:
            raise ValueError(
                "CILLoss needs the bag's relation id as the label column ('label'), got none. Note that model.fit "
                "drops the label column when every label is 0."
            )
        check_integer_labels(labels, "CILLoss", "Relation labels are integer ids from relation_ids.")
        labels = labels.long().view(-1)
        if labels.shape[0] != batch_size:
            raise ValueError(
                f"CILLoss got {labels.shape[0]} labels for {batch_size} bags; give one relation id per bag"
            )
        bad = (labels < 0) | (labels >= self.num_relations)
        if bool(bad.any()):
            values = sorted(set(labels[bad].tolist()))
            raise ValueError(
                f"CILLoss: unknown relation id(s) {values[:10]}: labels must be in [0, {self.num_relations}) "
                f"(num_relations={self.num_relations}). Build the ids with st_contrast.data.relation.relation_ids "
                "over "
                "all the data, and pass num_relations=len(relation_to_id)."
            )
        return labels

    # ------------------------------------------------------------------ MLM

    def protected_positions(self, input_ids: Tensor) -> Tensor:
        """Entity markers and every token between a start and an end marker (the mentions).

        With ``mlm_protected="start_markers"`` only the two start markers (the official code's choice).
        """
        head_start, head_end, tail_start, tail_end = self.marker_ids
        if self.mlm_protected == "start_markers":
            return (input_ids == head_start) | (input_ids == tail_start)
        markers = torch.isin(input_ids, torch.tensor(self.marker_ids, device=input_ids.device))
        inside = torch.zeros_like(markers)
        for start, end in ((head_start, head_end), (tail_start, tail_end)):
            opened = (input_ids == start).long().cumsum(dim=1) - (input_ids == end).long().cumsum(dim=1)
            inside |= opened > 0
        return markers | inside

    def _mlm_loss(self, columns: Sequence[dict[str, Tensor]]) -> Tensor:
        assert self.mlm_head is not None
        features = columns[0] if len(columns) == 1 else merge_features(columns)
        if features is None:  # pragma: no cover - columns of one tokenizer always merge
            raise ValueError("CILLoss could not batch the bag's sentences together for MLM")
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        masked, targets = mask_tokens(
            input_ids,
            attention_mask,
            self._mlm_ids["mask_token_id"],
            self._mlm_ids["vocab_size"],
            self._mlm_ids["special_ids"],
            probability=self.mlm_probability,
            protected=self.protected_positions(input_ids),
        )
        encoder = hf_encoder(self.model)
        inputs = {"input_ids": masked, "attention_mask": attention_mask}
        if "token_type_ids" in features:
            inputs["token_type_ids"] = features["token_type_ids"]
        hidden = encoder(**inputs).last_hidden_state
        # only the masked positions are projected onto the vocabulary (the mean is the same as over all of them)
        return self.mlm_head.loss(hidden, targets, encoder.get_input_embeddings().weight, loss_name="CILLoss")

    # ------------------------------------------------------------------ config

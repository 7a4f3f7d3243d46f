"""CIL: contrastive instance learning for distantly supervised relation extraction (Chen et al., ACL 2021)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional
from ._checks import check_int, check_integer_labels, check_non_negative, check_rate, check_temperature, check_texts
from ._common import embed_merged, for_wrapper, refuse_wrappers
from .heads import MLMHead, hf_encoder, mask_tokens, mlm_loss, tokenizer_ids

NegativesRule = Literal["other_bags", "official"]


def cil_ramp(step: int, warmup_steps: int) -> float:
    """CIL's weight ramp ``α(t) = 2 / (1 + exp(-2p)) - 1`` with ``p = t / (2·warmup_steps)`` (1 without warmup)."""
    if warmup_steps <= 0:
        return 1.0
    p = float(step) / (2.0 * float(warmup_steps))
    return 2.0 / (1.0 + math.exp(-2.0 * p)) - 1.0


class BagAttentionClassifier(nn.Module):
    """Selective attention over a bag's instances and a linear relation classifier (Lin et al., 2016).

    In OpenNRE's form (which CIL's code builds on) the query of relation ``r`` is row ``r`` of the
    classifier's weight ``W``: ``a_k = softmax_k(x_k · W_r)``, ``B = Σ_k a_k x_k``, ``logits = W·B + b``.
    Training attends with the gold relation's query; :meth:`predict` scores relation ``r`` with the
    bag representation built from ``r``'s own query, as at test time in OpenNRE and CIL.
    """

    def __init__(self, embedding_dimension: int, num_relations: int) -> None:
        super().__init__()
        self.embedding_dimension = int(embedding_dimension)
        self.num_relations = int(num_relations)
        self.classifier = nn.Linear(self.embedding_dimension, self.num_relations)

    def attention(self, instances: Tensor, relations: Tensor, mask: Tensor | None = None) -> Tensor:
        """Weights ``(B, k)`` of each bag's instances ``(B, k, D)`` under the query of ``relations`` ``(B,)``."""
        queries = self.classifier.weight[relations]  # (B, D)
        scores = torch.einsum("bkd,bd->bk", instances, queries)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return scores.softmax(dim=1)

    def forward(self, instances: Tensor, relations: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(bag_logits (B, R), bag_representations (B, D))`` with the given relations' queries."""
        weights = self.attention(instances, relations, mask)
        bags = torch.einsum("bk,bkd->bd", weights, instances)
        return self.classifier(bags), bags

    @torch.no_grad()
    def predict(self, instances: Tensor, mask: Tensor | None = None) -> Tensor:
        """``P(r | bag)`` for every relation ``(B, R)``, each from the bag built with ``r``'s query."""
        weight = self.classifier.weight
        scores = torch.einsum("bkd,rd->bkr", instances, weight)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        bags = torch.einsum("bkr,bkd->brd", scores.softmax(dim=1), instances)  # one bag vector per query
        probabilities = self.classifier(bags).softmax(dim=-1)  # (B, R query, R class)
        return probabilities.diagonal(dim1=1, dim2=2)

    def save(self, folder: str | os.PathLike) -> None:
        """Save to ``folder`` (``bag_classifier.json`` + ``bag_classifier.safetensors``)."""
        from safetensors.torch import save_file

        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "bag_classifier.json"), "w", encoding="utf-8") as handle:
            json.dump({"embedding_dimension": self.embedding_dimension, "num_relations": self.num_relations}, handle)
        state = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
        save_file(state, os.path.join(folder, "bag_classifier.safetensors"))

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device | None = None) -> BagAttentionClassifier:
        from safetensors.torch import load_file

        with open(os.path.join(folder, "bag_classifier.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        module = cls(**config)
        module.load_state_dict(load_file(os.path.join(folder, "bag_classifier.safetensors")))
        return module.to(device) if device is not None else module


class CILLoss(nn.Module):
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
            ``cil_examples`` build these rows, filling small bags by repetition).

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
        super().__init__()
        from st_contrast.modules.entity_pooling import find_entity_pooling

        self.model = model
        self.num_relations = check_int(num_relations, "num_relations", minimum=2)
        self.temperature = check_temperature(temperature)
        self.contrastive_weight = check_non_negative(contrastive_weight, "contrastive_weight")
        self.mlm_weight = check_non_negative(mlm_weight, "mlm_weight")
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)
        if negatives not in ("other_bags", "official"):
            raise ValueError(f"negatives must be 'other_bags' (the paper) or 'official' (the code), got {negatives!r}")
        self.negatives = negatives
        self.mlm_probability = check_rate(mlm_probability, "mlm_probability", low_open=True, high_open=True)
        self.gather_across_devices = bool(gather_across_devices)
        self.check_inputs = check_inputs
        pooling = find_entity_pooling(model)
        self.marker_ids: list[int] = list(pooling.marker_ids)
        dim = pooling.get_embedding_dimension()
        reference = next(iter(pooling.parameters()), None)
        self.bag_classifier = BagAttentionClassifier(dim, num_relations)
        if reference is not None:
            self.bag_classifier.to(device=reference.device, dtype=reference.dtype)
        self.mlm_head: MLMHead | None = None
        self._mlm_ids: dict[str, Any] = {}
        if self.mlm_weight > 0:
            self.mlm_head = MLMHead.from_model(model, load_pretrained=load_pretrained_mlm_head)
            self.mlm_head.to(dtype=hf_encoder(model).get_input_embeddings().weight.dtype)
            self._mlm_ids = tokenizer_ids(model)
            tokenizer = getattr(model, "tokenizer", None)
            if tokenizer is not None and len(tokenizer) > self._mlm_ids["vocab_size"]:
                raise ValueError(
                    f"the tokenizer has {len(tokenizer)} tokens but the encoder's embedding matrix only "
                    f"{self._mlm_ids['vocab_size']} rows; build the model with build_relation_encoder, which resizes "
                    "it"
                )
        #: training forward calls so far (drives α(t)); set it to resume a run
        self.step = 0
        self._special_ids: list[int] | None = None

    # ------------------------------------------------------------------ forward

    def alpha(self, step: int | None = None) -> float:
        """``α(t)`` at ``step`` (default: the current :attr:`step`)."""
        return cil_ramp(self.step if step is None else step, self.warmup_steps)

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
        check_texts(self, sentence_features, "CILLoss")
        use_contrastive = self.contrastive_weight > 0
        columns = sentence_features if use_contrastive else sentence_features[:-1]
        embeddings = embed_merged(self.model, columns)
        if not use_contrastive:
            embeddings = [*embeddings, embeddings[0]]  # placeholder; never used without the contrastive term
        losses = self.compute_loss_from_embeddings(embeddings, labels)
        if self.mlm_head is not None:
            losses["mlm"] = self.mlm_weight * self._mlm_loss(sentence_features[0])
        if torch.is_grad_enabled():
            self.step += 1
        return for_wrapper(self.model, losses)

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor) -> dict[str, Tensor]:
        """Bag CE and the weighted InfoNCE from ``[sentence_1, ..., sentence_k, augmented]`` embeddings."""
        if len(embeddings) < 2:
            raise ValueError(f"CILLoss needs k >= 1 sentence embeddings and the augmented one, got {len(embeddings)}")
        instances = torch.stack(list(embeddings[:-1]), dim=1)  # (B, k, D)
        logits, bags = self.bag_classifier(instances, labels)
        losses = {"bag_ce": F.cross_entropy(logits, labels)}
        if self.contrastive_weight > 0:
            if bags.shape[0] < 2 and not (self.gather_across_devices and functional.is_distributed()):
                raise ValueError(
                    f"CILLoss needs at least 2 bags per batch (the other bags are the negatives), got "
                    f"{bags.shape[0]}. "
                    "Use a larger batch size or drop_last=True."
                )
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
        """Entity markers and every token between a start and an end marker (the mentions)."""
        head_start, head_end, tail_start, tail_end = self.marker_ids
        markers = torch.isin(input_ids, torch.tensor(self.marker_ids, device=input_ids.device))
        inside = torch.zeros_like(markers)
        for start, end in ((head_start, head_end), (tail_start, tail_end)):
            opened = (input_ids == start).long().cumsum(dim=1) - (input_ids == end).long().cumsum(dim=1)
            inside |= opened > 0
        return markers | inside

    def _mlm_loss(self, features: dict[str, Tensor]) -> Tensor:
        assert self.mlm_head is not None
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
        logits = self.mlm_head(hidden, encoder.get_input_embeddings().weight)
        return mlm_loss(logits, targets)

    # ------------------------------------------------------------------ config

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "num_relations": self.num_relations,
            "temperature": self.temperature,
            "contrastive_weight": self.contrastive_weight,
            "mlm_weight": self.mlm_weight,
            "warmup_steps": self.warmup_steps,
            "negatives": self.negatives,
            "gather_across_devices": self.gather_across_devices,
            "mlm_probability": self.mlm_probability,
        }

    @property
    def citation(self) -> str:
        return """
@inproceedings{chen-etal-2021-cil,
    title = "{CIL}: Contrastive Instance Learning Framework for Distantly Supervised Relation Extraction",
    author = "Chen, Tao and Shi, Haizhou and Tang, Siliang and Chen, Zhigang and Wu, Fei and Zhuang, Yueting",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics",
    year = "2021",
    pages = "6191--6200",
    url = "https://aclanthology.org/2021.acl-long.483",
}
"""

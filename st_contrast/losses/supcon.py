"""Supervised contrastive learning (Khosla et al., 2020) and its use for out-of-domain intent detection
(Zeng et al., ACL 2021): cross-entropy through a classifier head plus SupCon between clean and
adversarial (FGM) views, optionally with R-Drop's consistency term."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_class_labels, check_non_negative, check_single_column, check_temperature
from ._common import embed_merged, for_wrapper, merge_features, refuse_wrappers
from .rdrop import RDROP_CITATION

logger = logging.getLogger(__name__)

Variant = Literal["khosla", "zeng"]
Form = Literal["out", "in"]
NoPositive = Literal["drop", "zero"]
Stage = Literal["joint", "contrastive", "classification"]
STAGES = ("joint", "contrastive", "classification")

_KHOSLA_CITATION = """
@inproceedings{khosla2020supcon,
    title = "Supervised Contrastive Learning",
    author = "Khosla, Prannay and Teterwak, Piotr and Wang, Chen and Sarna, Aaron and Tian, Yonglong and
              Isola, Phillip and Maschinot, Aaron and Liu, Ce and Krishnan, Dilip",
    booktitle = "Advances in Neural Information Processing Systems",
    year = "2020",
    url = "https://arxiv.org/abs/2004.11362",
}
"""

_ZENG_CITATION = """
@inproceedings{zeng2021modeling,
    title = "Modeling Discriminative Representations for Out-of-Domain Detection with Supervised Contrastive Learning",
    author = "Zeng, Zhiyuan and He, Keqing and Yan, Yuanmeng and Liu, Zijun and Wu, Yanan and Xu, Hong and
              Jiang, Huixing and Xu, Weiran",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics",
    year = "2021",
    url = "https://arxiv.org/abs/2105.14289",
}
"""


class SupConLoss(ContrastiveLoss):
    CITATION = _KHOSLA_CITATION + _ZENG_CITATION
    config_keys = ("temperature", "variant", "dropout_views", "gather_across_devices", "form", "no_positive")

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.1,
        variant: Variant = "khosla",
        dropout_views: bool = False,
        gather_across_devices: bool = False,
        check_inputs: bool = True,
        form: Form = "out",
        no_positive: NoPositive = "drop",
    ) -> None:
        """Supervised contrastive loss (Khosla et al., NeurIPS 2020) on labelled sentences.

        Every embedding in the batch is an anchor; its positives are the other examples with the same
        label (and, when a second view is given, its own second view); all other rows are negatives:

        ``loss_i = -1/|P(i)| Σ_{p∈P(i)} log( e(z_i, z_p) / Σ_{a≠i} e(z_i, z_a) )``, ``e(a, b) = exp(cos(a, b)/τ)``.

        That is the paper's ``L_out`` (eq. 2, the form it recommends); ``form="in"`` gives its ``L_in``
        (eq. 3), the mean over positives inside the log:
        ``loss_i = -log( 1/|P(i)| Σ_p e(z_i, z_p) / Σ_{a≠i} e(z_i, z_a) )``.

        **Anchors without a positive** (their class appears once in a single-view batch) are skipped: they
        are left out of the mean and counted in :attr:`skipped_anchors` (with a one-time warning). A
        batch where every anchor is skipped gives a loss of 0 that still backpropagates (zero gradients)
        and a warning, never NaN, so rare classes cannot crash a run. The official SupCon repository
        (HobbitLong/SupContrast) keeps them as zero terms of the mean instead (the sum over the anchors
        with a positive divided by all anchors): ``no_positive="zero"``.

        ``variant="zeng"`` is the grouping of Zeng et al. (2021)'s official code, for two views (clean,
        adversarial): the two views of the same positive share one log term
        (see :func:`st_contrast.losses.functional.supcon_zeng_terms`).

        Args:
            model: the SentenceTransformer to train.
            temperature: ``τ``; 0.1 as in Zeng et al. (2021) (Khosla et al. use 0.1 too for most runs).
            variant: ``"khosla"`` (the SupCon paper's ``L_out``) or ``"zeng"`` (needs two views).
            dropout_views: encode a single text column twice (independent dropout masks) so each example
                has its own second view, as unsupervised SimCSE does.
            gather_across_devices: in multi-process training (DDP), every process's embeddings and labels are
                positives and negatives for the local anchors, with gradients to their owners: loss and
                gradients equal one process on the concatenated batch (tested with two processes).
            check_inputs: reject empty texts (a cheap tensor test).
            form: ``"out"`` (``L_out``, default) or ``"in"`` (``L_in``); ``"in"`` only with ``variant="khosla"``.
            no_positive: ``"drop"`` (default: anchors without a positive leave the mean) or ``"zero"`` (they
                stay in it as zero terms, as in the official SupCon code).

        References:
            - Khosla et al. Supervised Contrastive Learning. NeurIPS 2020. https://arxiv.org/abs/2004.11362
            - Zeng et al. Modeling Discriminative Representations for Out-of-Domain Detection with
              Supervised Contrastive Learning. ACL 2021. https://arxiv.org/abs/2105.14289

        Requirements:
            1. Integer class labels; at least two classes per batch.
            2. Several examples per class per batch (``batch_sampler="group_by_label"`` in the Trainer
               guarantees it), otherwise most anchors are skipped.

        Inputs:
            +-------------------------------+----------------+------------------------------------------------+
            | Texts                         | Labels         | Notes                                          |
            +===============================+================+================================================+
            | (sentence,)                   | class id (int) | one view (two with ``dropout_views=True``)     |
            +-------------------------------+----------------+------------------------------------------------+
            | (sentence, second_view)       | class id (int) | the second text (an augmentation) is a positive|
            +-------------------------------+----------------+------------------------------------------------+

        Relations:
            - :class:`SupConOODLoss` adds a classifier head, cross-entropy and adversarial views.

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.losses import SupConLoss

                model = SentenceTransformer("path/to/model")
                train = Dataset.from_dict({"sentence": texts, "label": class_ids})
                trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=SupConLoss(model))
                trainer.train()
        """
        super().__init__(model, check_inputs)
        self.temperature = check_temperature(temperature)
        if variant not in ("khosla", "zeng"):
            raise ValueError(f"variant must be 'khosla' or 'zeng', got {variant!r}")
        self.variant = variant
        self.form, self.no_positive = _check_form(form, no_positive, variant)
        self.dropout_views = bool(dropout_views)
        self.gather_across_devices = bool(gather_across_devices)
        self.skipped_anchors = 0
        self.total_anchors = 0
        self._warned_skip = False

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        self.check_texts(sentence_features)
        repeat = 2 if len(sentence_features) == 1 and self.dropout_views else 1
        embeddings = embed_merged(self.model, sentence_features, repeat=repeat)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def _check_columns(self, sentence_features: Iterable[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        sentence_features = list(sentence_features)
        if len(sentence_features) not in (1, 2):
            raise ValueError(
                f"{type(self).__name__} expects 1 text column (sentence) or 2 (sentence, second view) plus a label, "
                f"got {len(sentence_features)} text columns. Drop the extra columns from the dataset."
            )
        return sentence_features

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The loss from already computed views ``[view_1(, view_2)]`` of the same examples."""
        batch_size = embeddings[0].shape[0]
        labels = check_class_labels(labels, batch_size, "SupConLoss", need_two_classes=True)
        labels = labels.to(embeddings[0].device)
        if self.variant == "zeng" and len(embeddings) != 2:
            raise ValueError(
                "SupConLoss(variant='zeng') groups two views of each example: give a second text column or set "
                "dropout_views=True"
            )
        if batch_size * len(embeddings) < 2:
            raise ValueError(f"SupConLoss needs at least 2 embeddings per batch, got {batch_size * len(embeddings)}")
        loss, skipped = functional.supcon_loss(
            embeddings,
            labels,
            self.temperature,
            self.variant,
            self.form,
            self.no_positive,
            gather_across_devices=self.gather_across_devices,
        )
        self._count(skipped, batch_size * len(embeddings))
        return loss

    def get_extra_state(self) -> dict[str, int]:
        """The anchor counters, kept in ``state_dict()`` (and so in every checkpoint's loss state)."""
        return {"skipped_anchors": int(self.skipped_anchors), "total_anchors": int(self.total_anchors)}

    def set_extra_state(self, state: Any) -> None:
        keys = ("skipped_anchors", "total_anchors")
        if not isinstance(state, dict) or not all(type(state.get(k)) is int and state[k] >= 0 for k in keys):
            raise ValueError(f"{type(self).__name__}: the saved state must hold integer {keys} >= 0, got {state!r}")
        self.skipped_anchors, self.total_anchors = state["skipped_anchors"], state["total_anchors"]

    def _count(self, skipped: int, total: int) -> None:
        self.skipped_anchors += skipped
        self.total_anchors += total
        if skipped == total:
            logger.warning(
                "SupConLoss: no anchor of this batch has a positive (every label appears once), so the loss is 0. "
                "Use batch_sampler='group_by_label', a larger batch, or a second view."
            )
        elif skipped and not self._warned_skip:
            logger.warning(
                "SupConLoss: %d of %d anchors have no positive in their batch and are skipped (counted in "
                "loss.skipped_anchors). Use batch_sampler='group_by_label' to avoid it.",
                skipped,
                total,
            )
            self._warned_skip = True


def _check_form(form: str, no_positive: str, variant: str) -> tuple[str, str]:
    if form not in ("out", "in"):
        raise ValueError(f"form must be 'out' (L_out, sum outside the log) or 'in' (L_in, inside it), got {form!r}")
    if form == "in" and variant != "khosla":
        raise ValueError(f"form='in' (L_in) is defined for variant='khosla' only, got variant={variant!r}")
    if no_positive not in ("drop", "zero"):
        raise ValueError(
            f"no_positive must be 'drop' (left out of the mean) or 'zero' (zero terms), got {no_positive!r}"
        )
    return form, no_positive


def fgm_perturbation(gradient: Tensor, epsilon: float, eps: float = 1e-10) -> Tensor:
    """FGM (Miyato et al., 2017) as used by Zeng et al. (2021): ``ε · g / ‖g‖₂``, normalised per token.

    ``gradient`` is ``(batch, tokens, hidden)``; each token's vector is scaled to norm ``epsilon`` in the
    direction of its gradient (tokens with a zero gradient, e.g. padding, get no perturbation).
    """
    return epsilon * gradient / (gradient.norm(p=2, dim=-1, keepdim=True) + eps)


class _WordEmbeddingTap:
    """Forward hooks on the encoder's word embeddings: capture their output, or add a perturbation."""

    def __init__(self, embedding: nn.Module) -> None:
        self.embedding = embedding
        self.captured: Tensor | None = None

    @contextmanager
    def capture(self) -> Iterator[None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            self.captured = output

        handle = self.embedding.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    @contextmanager
    def perturb(self, delta: Tensor) -> Iterator[None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            if output.shape != delta.shape:
                raise RuntimeError(f"adversarial pass: embeddings {tuple(output.shape)} vs delta {tuple(delta.shape)}")
            return output + delta.to(output.dtype)

        handle = self.embedding.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()


class SupConOODLoss(ContrastiveLoss):
    CITATION = _ZENG_CITATION + _KHOSLA_CITATION
    config_keys = (
        "num_labels",
        "temperature",
        "scl_weight",
        "ce_weight",
        "adversarial_epsilon",
        "rdrop_alpha",
        "variant",
        "stage",
        "gather_across_devices",
        "form",
        "no_positive",
    )

    def __init__(
        self,
        model: nn.Module,
        num_labels: int,
        temperature: float = 0.1,
        scl_weight: float = 1.0,
        ce_weight: float = 1.0,
        adversarial_epsilon: float = 0.1,
        rdrop_alpha: float = 0.0,
        variant: Variant = "khosla",
        stage: Stage = "joint",
        classifier_dropout: float = 0.1,
        label_names: list[str] | None = None,
        gather_across_devices: bool = False,
        check_inputs: bool = True,
        form: Form = "out",
        no_positive: NoPositive = "drop",
    ) -> None:
        """Supervised contrastive learning for out-of-domain intent detection (Zeng et al., ACL 2021).

        A :class:`~st_contrast.modules.ClassifierHead` is appended to ``model`` (so it is saved and
        loaded with it, and MSP works at test time). Each step:

        1. clean forward: ``CE(W·h + b, y)`` (with R-Drop, the batch is encoded twice in one pass);
        2. FGM on the word embeddings: ``δ_t = ε · g_t / ‖g_t‖₂`` per token, ``g = ∂CE/∂E`` (detached);
        3. adversarial forward on ``E + δ``; SupCon over the clean and adversarial sentence embeddings,
           positives = same intent label (each example's adversarial view included);
        4. total ``ce_weight · CE + scl_weight · SupCon (+ rdrop_alpha · KL_sym)``, returned as a dict of
           its weighted components (``"ce"``, ``"supcon"``, ``"rdrop"``) that the Trainer logs and sums.

        **Schedules.** ``stage="joint"`` (default) trains both terms together. The paper's two-stage recipe is
        ``stage="contrastive"`` (SupCon only; CE is still computed, untrained, to make the adversarial
        gradient, as in the official code), then ``stage="classification"`` (CE only, no adversarial pass):
        call :meth:`set_stage` between two ``fit``/``train`` runs. ``scl_weight=0`` gives the CE baseline.

        Args:
            model: the SentenceTransformer to train.
            num_labels: number of in-domain classes (the head's outputs); labels must be ``0..num_labels-1``.
            temperature: SupCon's ``τ`` (0.1 in the paper).
            scl_weight: weight of the supervised contrastive term.
            ce_weight: weight of the cross-entropy term.
            adversarial_epsilon: ``ε``, the L2 norm of each token's perturbation (0.1 in the paper);
                0 makes the second view a plain dropout view.
            rdrop_alpha: ``α`` of R-Drop's symmetric KL between two dropout passes of the classifier
                (Liang et al., 2021); 0 turns it off. The CE is then the mean over the two passes.
            variant: ``"khosla"`` (paper's SupCon form, default) or ``"zeng"`` (the official code's
                grouping of the clean and adversarial similarities of a positive).
            stage: ``"joint"``, ``"contrastive"`` or ``"classification"`` (see above).
            classifier_dropout: dropout before the head's linear layer (used when the head is created).
            label_names: optional class names saved with the head.
            gather_across_devices: SupCon's candidates from every process, as in :class:`SupConLoss` (the
                cross-entropy and R-Drop terms are per example, so DDP's averaging already makes them global).
            check_inputs: reject empty texts.
            form: ``"out"`` (Khosla et al.'s ``L_out``, default) or ``"in"`` (``L_in``), as in :class:`SupConLoss`.
            no_positive: ``"drop"`` or ``"zero"``, as in :class:`SupConLoss` (every anchor has a positive here,
                its own adversarial view, so both give the same loss; kept for symmetry).

        References:
            - Zeng et al. Modeling Discriminative Representations for Out-of-Domain Detection with
              Supervised Contrastive Learning. ACL 2021. https://arxiv.org/abs/2105.14289
            - Khosla et al. Supervised Contrastive Learning. NeurIPS 2020.
            - Liang et al. R-Drop: Regularized Dropout for Neural Networks. NeurIPS 2021.

        Requirements:
            1. A Hugging Face encoder with word embeddings (the adversarial view perturbs them).
            2. Integer labels ``0..num_labels-1`` and at least two classes per batch.

        Inputs:
            +-------------+----------------+-----------------------------------------------+
            | Texts       | Labels         | Notes                                         |
            +=============+================+===============================================+
            | (sentence,) | class id (int) | in-domain training data only (no OOD needed)  |
            +-------------+----------------+-----------------------------------------------+

        Relations:
            - :class:`SupConLoss` is the contrastive term alone; :class:`RDropLoss` the R-Drop classifier loss.
            - Evaluate with :func:`st_contrast.evaluation.ood.evaluate_ood` (LOF, GDA, MSP).

        Example:
            ::

                from sentence_transformers import SentenceTransformerTrainer
                from st_contrast.data.clinc import load_clinc150
                from st_contrast.losses import SupConOODLoss

                clinc = load_clinc150()
                loss = SupConOODLoss(model, num_labels=len(clinc.label_names), label_names=clinc.label_names)
                SentenceTransformerTrainer(model=model, train_dataset=clinc.dataset("train"), loss=loss).train()
        """
        super().__init__(model, check_inputs)
        from st_contrast.modules.classifier import ensure_classifier_head

        self.temperature = check_temperature(temperature)
        self.scl_weight = check_non_negative(scl_weight, "scl_weight")
        self.ce_weight = check_non_negative(ce_weight, "ce_weight")
        self.adversarial_epsilon = check_non_negative(adversarial_epsilon, "adversarial_epsilon")
        self.rdrop_alpha = check_non_negative(rdrop_alpha, "rdrop_alpha")
        if self.scl_weight == 0 and self.ce_weight == 0:
            raise ValueError("scl_weight and ce_weight are both 0, so there is nothing to train; set one above 0")
        if variant not in ("khosla", "zeng"):
            raise ValueError(f"variant must be 'khosla' or 'zeng', got {variant!r}")
        self.variant = variant
        self.form, self.no_positive = _check_form(form, no_positive, variant)
        self.stage: Stage = "joint"
        self.set_stage(stage)
        self.gather_across_devices = bool(gather_across_devices)
        self.head = ensure_classifier_head(model, num_labels, dropout=classifier_dropout, labels=label_names)
        self.num_labels = self.head.num_labels
        self._tap = _WordEmbeddingTap(hf_encoder(model).get_input_embeddings())

    def set_stage(self, stage: Stage) -> None:
        """Switch between ``"joint"``, ``"contrastive"`` (stage 1 of the paper) and ``"classification"`` (stage 2)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage

    def get_extra_state(self) -> dict[str, str]:
        """The stage (:meth:`set_stage`), kept in ``state_dict()`` (and so in every checkpoint's loss state)."""
        return {"stage": self.stage}

    def set_extra_state(self, state: Any) -> None:
        stage = state.get("stage") if isinstance(state, dict) else None
        if stage not in STAGES:
            raise ValueError(f"SupConOODLoss: the saved state must hold a stage in {STAGES}, got {state!r}")
        if stage != self.stage:
            logger.warning(
                "SupConOODLoss: restoring stage %r from the saved state (the loss was at %r)", stage, self.stage
            )
        self.set_stage(stage)

    @property
    def _uses_contrast(self) -> bool:
        return self.stage == "contrastive" or (self.stage == "joint" and self.scl_weight > 0)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        features = check_single_column(self, sentence_features, "SupConOODLoss")
        refuse_wrappers(
            self.model,
            "SupConOODLoss",
            {
                "MatryoshkaLoss": "its classifier reads the sentence embedding before the wrapper truncates it, and "
                "its adversarial view needs a fresh forward pass on every call",
                "AdaptiveLayerLoss": "its adversarial view perturbs the word embeddings on every call, and the "
                "wrapper reuses the first call's hidden states",
            },
        )
        batch_size = features["input_ids"].shape[0]
        contrast = self._uses_contrast
        labels = check_class_labels(labels, batch_size, "SupConOODLoss", self.num_labels, need_two_classes=contrast)
        labels = labels.to(features["input_ids"].device)
        rdrop = self.rdrop_alpha > 0 and self.stage != "contrastive"

        # 1. clean pass (twice in one forward with R-Drop), capturing the word embeddings for FGM
        repeat = 2 if rdrop else 1
        batch = merge_features([features] * repeat) if repeat > 1 else dict(features)
        if batch is None:  # pragma: no cover - identical columns always merge
            raise ValueError("SupConOODLoss could not batch the two R-Drop copies together")
        adversarial = contrast and self.adversarial_epsilon > 0
        if adversarial:
            with self._tap.capture():
                output = self.model(batch)
            word_embeddings = self._tap.captured
            self._tap.captured = None
        else:
            output = self.model(batch)
        from st_contrast.modules.classifier import logits_from_output

        logits = logits_from_output(output, "SupConOODLoss").reshape(repeat, batch_size, -1)
        embeddings = output["sentence_embedding"].reshape(repeat, batch_size, -1)
        ce = torch.stack([F.cross_entropy(logits[k], labels) for k in range(repeat)]).mean()

        components: dict[str, Tensor] = {}
        if self.stage != "contrastive" and self.ce_weight > 0:
            components["ce"] = self.ce_weight * ce
        if rdrop:
            components["rdrop"] = self.rdrop_alpha * functional.symmetric_kl(logits[0], logits[1], reduction="mean")
        if contrast:
            second = self._second_view(features, ce, word_embeddings if adversarial else None, batch_size)
            scl, _ = functional.supcon_loss(
                [embeddings[0], second],
                labels,
                self.temperature,
                self.variant,
                self.form,
                self.no_positive,
                gather_across_devices=self.gather_across_devices,
            )
            weight = 1.0 if self.stage == "contrastive" else self.scl_weight
            components["supcon"] = weight * scl
        return for_wrapper(self.model, components)

    def _second_view(self, features: dict[str, Tensor], ce: Tensor, word_embeddings: Tensor | None, n: int) -> Tensor:
        """The adversarial view's sentence embeddings (a plain dropout view when ``ε = 0``)."""
        if word_embeddings is None:
            return self.model(dict(features))["sentence_embedding"]
        if not word_embeddings.requires_grad:
            raise RuntimeError(
                "SupConOODLoss: the word embeddings do not require a gradient (frozen embeddings under no_grad?), "
                "so the adversarial view cannot be made. Set adversarial_epsilon=0 or unfreeze them."
            )
        (gradient,) = torch.autograd.grad(ce, word_embeddings, retain_graph=True)
        delta = fgm_perturbation(gradient[:n].detach(), self.adversarial_epsilon)
        with self._tap.perturb(delta):
            return self.model(dict(features))["sentence_embedding"]

    @property
    def citation(self) -> str:
        citation = self.CITATION
        if self.rdrop_alpha > 0:
            citation += RDROP_CITATION
        return citation

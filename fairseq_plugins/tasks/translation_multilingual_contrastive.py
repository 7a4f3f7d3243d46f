"""Many-to-many translation with language tokens and aligned augmentation, for mCLR (mRASP2).

Pan et al. (2021), "Contrastive Learning for Many-to-many Multilingual Neural Machine Translation",
ACL 2021, https://arxiv.org/abs/2105.09501; Johnson et al. (2017) for target-language tokens.

Data: one binarised folder with a shared vocabulary and one ``fairseq-preprocess`` run per language
pair (``train.en-de.en`` ... as usual; a pair ``de-en`` is also read from ``en-de`` files). Every
language ``xx`` gets a symbol ``LANG_TOK_XX`` appended to the dictionary (unless already there).

* Source side: ``LANG_TOK_<tgt> source </s>`` (``--encoder-langtok tgt``, the default, tells the
  encoder the direction; ``src`` puts the source language's token there instead, as mRASP2's data
  does), ``none`` for no token.
* Decoder: the target-language token replaces ``</s>`` as the first decoder input, so generation is
  forced into the target language by starting from that token (``bos_token``) without a reference.
* Training batches mix all ``--lang-pairs``; ``--sampling-temperature`` resamples pairs each epoch.
* ``--ras-dict`` / ``--ras-prob``: aligned augmentation (random substitution of source words by their
  dictionary translations, :mod:`fairseq_plugins.data.aligned_augmentation`), training split only.

Generation (zero-shot directions included)::

    fairseq-generate data-bin --user-dir "$(st-contrast fairseq-user-dir)" \\
        --task translation_multilingual_contrastive --lang-pairs en-de,de-en,en-fr,fr-en \\
        --source-lang de --target-lang fr --path checkpoints/checkpoint_best.pt --remove-bpe

``--lang-pairs`` (or ``--langs``) must name the same languages as in training: they fix the language
tokens, hence the vocabulary size.
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import utils
from fairseq.data import Dictionary, LanguagePairDataset
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks.translation import TranslationConfig, TranslationTask, load_langpair_dataset
from omegaconf import II

from .._registry import register_task_once
from ..data.aligned_augmentation import AlignedAugmentation
from ..data.multilingual_pair_dataset import LanguagePair, MultilingualPairDataset, temperature_ratios

logger = logging.getLogger(__name__)

ENCODER_LANGTOK = ChoiceEnum(["tgt", "src", "none"])


def lang_token(lang: str) -> str:
    """The dictionary symbol of a language: ``LANG_TOK_DE`` for ``de``."""
    return f"LANG_TOK_{lang.upper()}"


def parse_lang_pairs(text: str | None) -> list[tuple[str, str]]:
    pairs = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        src, sep, tgt = item.partition("-")
        if not sep or not src or not tgt or "-" in tgt or src == tgt:
            raise ValueError(f"--lang-pairs expects comma-separated SRC-TGT pairs like 'en-de,de-en', got {item!r}")
        pairs.append((src, tgt))
    return pairs


@dataclass
class TranslationMultilingualContrastiveConfig(TranslationConfig):
    lang_pairs: Optional[str] = field(  # noqa: UP045 (fairseq parses typing.Optional only)
        default=None,
        metadata={"help": "comma-separated training directions, e.g. 'en-de,de-en,en-fr,fr-en' (required)"},
    )
    langs: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "comma-separated languages that get a LANG_TOK_XX symbol (default: those of --lang-pairs); "
            "must match between training and generation"
        },
    )
    encoder_langtok: ENCODER_LANGTOK = field(  # type: ignore[valid-type]
        default="tgt",
        metadata={
            "help": "language token in front of the source: target language (tgt), source language (src) or none"
        },
    )
    sampling_temperature: float = field(
        default=1.0,
        metadata={"help": "temperature T for sampling training pairs, p_i ∝ (n_i/N)^(1/T) (1: natural sizes)"},
    )
    ras_dict: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "comma-separated MUSE-format word dictionaries for aligned augmentation, named 'en-de.txt' "
            "or given as 'en-de=PATH' (training only)"
        },
    )
    ras_prob: float = field(
        default=0.3,
        metadata={"help": "probability of replacing each source word that has a dictionary translation"},
    )
    ras_bpe_marker: str = field(
        default="@@",
        metadata={"help": "subword continuation marker of the vocabulary ('' if symbols are whole words)"},
    )
    seed: int = II("common.seed")


@register_task_once("translation_multilingual_contrastive", dataclass=TranslationMultilingualContrastiveConfig)
class TranslationMultilingualContrastiveTask(TranslationTask):
    """Many-to-many translation over ``--lang-pairs`` with language tokens (see the module docstring)."""

    cfg: TranslationMultilingualContrastiveConfig

    def __init__(self, cfg: TranslationMultilingualContrastiveConfig, dictionary: Dictionary, langs: list[str]):
        super().__init__(cfg, dictionary, dictionary)
        self.lang_pairs = parse_lang_pairs(cfg.lang_pairs)
        self.langs = langs
        self.lang_token_ids = {lang: dictionary.index(lang_token(lang)) for lang in langs}
        self.augmentation: AlignedAugmentation | None = None
        if cfg.ras_dict:
            specs = [s for s in cfg.ras_dict.split(",") if s.strip()]
            self.augmentation = AlignedAugmentation.from_specs(
                specs, dictionary, cfg.ras_prob, cfg.ras_bpe_marker, protected=self.lang_token_ids.values()
            )

    @classmethod
    def setup_task(cls, cfg: TranslationMultilingualContrastiveConfig, **kwargs):
        pairs = parse_lang_pairs(cfg.lang_pairs)
        if not pairs:
            raise ValueError("translation_multilingual_contrastive needs --lang-pairs, e.g. en-de,de-en")
        if cfg.langs:
            langs = [lang.strip() for lang in cfg.langs.split(",") if lang.strip()]
        else:
            langs = sorted({lang for pair in pairs for lang in pair})
        missing = sorted({lang for pair in pairs for lang in pair} - set(langs))
        for lang in (cfg.source_lang, cfg.target_lang):
            if lang is not None and lang not in langs:
                missing.append(lang)
        if missing:
            raise ValueError(f"languages {missing} have no language token: add them to --langs (now {langs})")
        if (cfg.source_lang is None) != (cfg.target_lang is None):
            raise ValueError("give both --source-lang and --target-lang (one direction) or neither (all pairs)")
        if cfg.left_pad_target:
            raise ValueError("translation_multilingual_contrastive does not support --left-pad-target")
        if not 0.0 <= cfg.ras_prob <= 1.0:
            raise ValueError(f"--ras-prob must be in [0, 1], got {cfg.ras_prob}")
        if cfg.sampling_temperature <= 0:
            raise ValueError(f"--sampling-temperature must be > 0, got {cfg.sampling_temperature}")

        data = utils.split_paths(cfg.data)[0]
        dictionary = cls.load_shared_dictionary(data, langs)
        for lang in langs:
            dictionary.add_symbol(lang_token(lang))
        logger.info("dictionary: %d types, languages %s", len(dictionary), ",".join(langs))
        return cls(cfg, dictionary, langs)

    @classmethod
    def load_shared_dictionary(cls, data: str, langs: list[str]) -> Dictionary:
        candidates = [os.path.join(data, "dict.txt")] + [os.path.join(data, f"dict.{lang}.txt") for lang in langs]
        found = [path for path in candidates if os.path.isfile(path)]
        if not found:
            raise FileNotFoundError(
                f"no dictionary in {data}: expected dict.txt or dict.<lang>.txt "
                "(one vocabulary shared by all languages)"
            )
        dictionary = cls.load_dictionary(found[0])
        for path in found[1:]:
            other = cls.load_dictionary(path)
            if other.symbols != dictionary.symbols:
                raise ValueError(
                    f"{path} differs from {found[0]}: this task needs one vocabulary for all languages "
                    "(fairseq-preprocess --srcdict/--tgtdict with the same file, or --joined-dictionary)"
                )
        return dictionary

    # -- data -----------------------------------------------------------------------------------
    def _langtoks(self, src: str, tgt: str) -> tuple[int | None, int]:
        side = self.cfg.encoder_langtok
        encoder_tok = None if side == "none" else self.lang_token_ids[tgt if side == "tgt" else src]
        return encoder_tok, self.lang_token_ids[tgt]

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs) -> None:
        paths = utils.split_paths(self.cfg.data)
        is_train = split == self.cfg.train_subset
        if not is_train:
            paths = paths[:1]
        data_path = paths[(epoch - 1) % len(paths)]
        if self.cfg.source_lang is not None and not is_train:
            directions = [(self.cfg.source_lang, self.cfg.target_lang)]
        else:
            directions = self.lang_pairs
        pairs = []
        for src, tgt in directions:
            if not is_train and not _pair_exists(data_path, split, src, tgt, self.cfg.dataset_impl):
                logger.info("no %s data for %s-%s, skipped", split, src, tgt)
                continue
            dataset = load_langpair_dataset(
                data_path,
                split,
                src,
                self.src_dict,
                tgt,
                self.tgt_dict,
                combine=combine,
                dataset_impl=self.cfg.dataset_impl,
                upsample_primary=1,
                left_pad_source=self.cfg.left_pad_source,
                left_pad_target=False,
                max_source_positions=self.cfg.max_source_positions,
                max_target_positions=self.cfg.max_target_positions,
                truncate_source=self.cfg.truncate_source,
                shuffle=(split != "test"),
                pad_to_multiple=self.cfg.required_seq_len_multiple,
            )
            pairs.append(LanguagePair(src, tgt, dataset, *self._langtoks(src, tgt)))
        if not pairs:
            raise FileNotFoundError(f"no {split} data in {data_path} for directions {directions}")
        ratios = None
        if is_train and self.cfg.sampling_temperature != 1.0:
            ratios = temperature_ratios([len(p.dataset) for p in pairs], self.cfg.sampling_temperature)
            logger.info("sampling ratios per pair: %s", dict(zip([f"{p.src}-{p.tgt}" for p in pairs], ratios)))
        self.datasets[split] = MultilingualPairDataset(
            pairs,
            size_ratios=ratios,
            seed=int(self.cfg.seed),
            augment=self.augmentation if is_train else None,
            max_source_positions=self.cfg.max_source_positions,
        )

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        src, tgt = self._require_direction("fairseq-interactive")
        encoder_tok, _ = self._langtoks(src, tgt)
        if encoder_tok is not None:
            src_tokens = [torch.cat([t.new_tensor([encoder_tok]), t]) for t in src_tokens]
            src_lengths = [int(n) + 1 for n in src_lengths]
        return LanguagePairDataset(
            src_tokens, src_lengths, self.source_dictionary, tgt_dict=self.target_dictionary, constraints=constraints
        )

    # -- generation -----------------------------------------------------------------------------
    def _require_direction(self, what: str) -> tuple[str, str]:
        if self.cfg.source_lang is None or self.cfg.target_lang is None:
            raise ValueError(f"{what} with translation_multilingual_contrastive needs --source-lang and --target-lang")
        return self.cfg.source_lang, self.cfg.target_lang

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        extra = dict(extra_gen_cls_kwargs or {})
        strip = set(extra.get("symbols_to_strip_from_output") or []) | set(self.lang_token_ids.values())
        extra["symbols_to_strip_from_output"] = strip
        return super().build_generator(models, args, seq_gen_cls=seq_gen_cls, extra_gen_cls_kwargs=extra, **kwargs)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        if self.cfg.target_lang is not None:
            bos = self.lang_token_ids[self.cfg.target_lang]
        else:
            first = (
                sample["net_input"]["prev_output_tokens"][:, 0]
                if "prev_output_tokens" in sample["net_input"]
                else None
            )
            if first is None or not bool((first == first[0]).all()):
                raise ValueError(
                    "generation needs one target language per batch: pass --source-lang and --target-lang"
                )
            bos = int(first[0])
        with torch.no_grad():
            return generator.generate(
                models, sample, prefix_tokens=prefix_tokens, constraints=constraints, bos_token=bos
            )


def _pair_exists(data_path: str, split: str, src: str, tgt: str, impl) -> bool:
    from fairseq.data import indexed_dataset

    for a, b in ((src, tgt), (tgt, src)):
        if indexed_dataset.dataset_exists(os.path.join(data_path, f"{split}.{a}-{b}.{src}"), impl=impl):
            return True
    return False

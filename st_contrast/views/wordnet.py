"""WordNet access and CLINE's synonym/antonym sentence rewriter.

CLINE (Wang et al., ACL 2021) trains on triples ``(x, x_syn, x_ant)``: ``x_syn`` replaces some content
words of ``x`` by WordNet synonyms or hypernyms (a near-paraphrase), ``x_ant`` replaces some by WordNet
antonyms, or by random words of the same part of speech when a word has no antonym (a contradiction).

**WordNet.** :func:`load_wordnet` returns an NLTK WordNet reader, found in this order:

1. the user's own NLTK data (``python -m nltk.downloader wordnet``), if ``nltk.corpus.wordnet`` loads;
2. a copy cached under ``st_contrast.data.paths.cache_dir() / "nltk_data/corpora/wordnet"``;
3. a new cached copy built from Debian's ``wordnet-base`` + ``wordnet-sense-index`` packages
   (``/usr/share/wordnet``, or ``$ST_CONTRAST_WORDNET_DIR``). NLTK needs real files (it refuses
   links that leave its data root) and a ``lexnames`` file, which Debian does not ship: its 45 lines
   are parsed from the ``lexnames(5WN)`` manual page that the same package installs.

When none of these exists, a ``LookupError`` names both ways of getting WordNet.

**Parts of speech without a tagger.** No POS-tagger model can be relied upon offline, so a word's part
of speech comes from WordNet itself: among the parts of speech under which WordNet knows the word
(after WordNet's own lemmatiser, ``morphy``), the one whose senses are most often tagged in SemCor
(``index.sense`` tag counts) wins, then the one with most senses, then noun > verb > adjective >
adverb. Function words are excluded by a stop-word list kept in this module, and capitalised words
after the first word of a sentence are treated as proper nouns and left alone. The word's inflection
(Penn tag: plural, past tense, comparative, ...) is recovered with ``lemminflect`` and re-applied to
the replacement, so ``"dogs ran"`` becomes e.g. ``"hounds ran"``, not ``"hound ran"``. This is a
per-word guess: a word used as a noun where its verb reading is more frequent is treated as a verb.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import random
import re
import shutil
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from st_contrast.losses._checks import check_positive_int, check_rate

logger = logging.getLogger(__name__)

ENV_WORDNET_DIR = "ST_CONTRAST_WORDNET_DIR"
DEBIAN_WORDNET_DIR = "/usr/share/wordnet"
LEXNAMES_MAN_PAGE = "/usr/share/man/man5/lexnames.5WN.gz"

INSTALL_HINT = (
    "Install it one of two ways: (a) the Debian/Ubuntu packages, `sudo apt-get install wordnet-base "
    "wordnet-sense-index` (st-contrast then builds an NLTK-readable copy in its cache folder on first use); "
    "or (b) NLTK's own copy, `python -m nltk.downloader wordnet`."
)

Relation = Literal["synonym", "hypernym", "antonym", "random"]

# Function words never replaced: determiners, pronouns, prepositions, conjunctions, auxiliaries and
# modals, and a few very frequent adverbs whose WordNet senses are not what they mean in running text.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against all almost along already also although always am
    among amongst an and another any anybody anyhow anyone anything anyway anywhere are around as at be
    became because become becomes been before beforehand behind being below beside besides between beyond
    both but by can cannot could did do does doing done down during each either else elsewhere enough etc
    even ever every everybody everyone everything everywhere except few for from further had has have having
    he hence her here hereby herein hers herself him himself his how however i ie if in indeed into is it
    its itself just least less let lets like many may me meanwhile might mine more moreover most mostly much
    must my myself namely neither never nevertheless next no nobody none noone nor not nothing now nowhere of
    off often on once one only onto or other others otherwise our ours ourselves out over own per perhaps
    quite rather really same shall she should since so some somebody somehow someone something sometime
    sometimes somewhere still such than that the their theirs them themselves then thence there thereafter
    thereby therefore therein thereupon these they this those though through throughout thru thus to
    together too toward towards under until unto up upon us very via was we well were what whatever when
    whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while whither
    who whoever whole whom whose why will with within without would yet you your yours yourself yourselves
    s t d ll m re ve o y don doesn didn isn aren wasn weren hasn haven hadn won wouldn shan shouldn couldn
    mustn mightn needn ain mr mrs ms dr st jr sr vs
    """.split()
)

_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_PURE_ALPHA = re.compile(r"[^\W\d_]+")

# WordNet POS letter -> (lemminflect universal POS, base Penn tag, Penn tags to try, index.sense ss_type)
_POS_ORDER = ("n", "v", "a", "r")
_UPOS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}
_BASE_TAG = {"n": "NN", "v": "VB", "a": "JJ", "r": "RB"}
_TAGS = {
    "n": ("NN", "NNS"),
    "v": ("VB", "VBP", "VBZ", "VBD", "VBN", "VBG"),
    "a": ("JJ", "JJR", "JJS"),
    "r": ("RB", "RBR", "RBS"),
}
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}


# ---------------------------------------------------------------------------------------------
# Finding WordNet
# ---------------------------------------------------------------------------------------------


def wordnet_cache_root() -> Path:
    """The NLTK data folder st-contrast builds WordNet into: ``cache_dir()/nltk_data``."""
    from st_contrast.data.paths import cache_dir

    return cache_dir() / "nltk_data"


def read_lexnames(man_page: str | os.PathLike = LEXNAMES_MAN_PAGE) -> list[tuple[int, str, int]]:
    """The 45 ``(number, lexicographer file name, syntactic category)`` rows listed in ``lexnames(5WN)``."""
    path = Path(man_page)
    if not path.exists():
        raise LookupError(
            f"WordNet's lexnames list was not found at {path} (it comes with the wordnet-base package). "
            + INSTALL_HINT
        )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    category = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    rows = []
    for match in re.finditer(r"^(\d\d)\t((adj|adv|noun|verb)\.\w+)[ \t]", text, flags=re.MULTILINE):
        rows.append((int(match.group(1)), match.group(2), category[match.group(3)]))
    if not rows or [number for number, _, _ in rows] != list(range(len(rows))):
        raise LookupError(f"could not read the lexicographer file list from {path}: unexpected format")
    return rows


def build_wordnet_copy(
    source_dir: str | os.PathLike = DEBIAN_WORDNET_DIR,
    nltk_data_root: str | os.PathLike | None = None,
    man_page: str | os.PathLike = LEXNAMES_MAN_PAGE,
) -> Path:
    """Copy a WordNet 3.0 database folder into ``<nltk_data_root>/corpora/wordnet`` so NLTK can read it.

    Files are copied (NLTK refuses symbolic links that leave its data root) and a ``lexnames`` file is
    written from the manual page. The copy is made in a temporary folder and renamed into place, so a
    concurrent or interrupted build never leaves a half-written database behind. Returns the folder.
    """
    source = Path(source_dir)
    if not (source / "data.noun").is_file() or not (source / "index.noun").is_file():
        raise LookupError(f"no WordNet database in {source} (expected data.noun and index.noun). " + INSTALL_HINT)
    root = Path(nltk_data_root) if nltk_data_root is not None else wordnet_cache_root()
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file() and (target / "data.noun").is_file():
        return target
    lexnames = read_lexnames(man_page)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".wordnet-build-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for entry in source.iterdir():
            if entry.is_file():
                shutil.copyfile(entry, staging / entry.name)  # follows links: real files in the copy
        with open(staging / "lexnames", "w", encoding="utf-8") as handle:
            for number, name, category in lexnames:
                handle.write(f"{number:02d}\t{name}\t{category}\n")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "lexnames").is_file():  # someone else's half-built copy: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built an NLTK-readable WordNet from %s in %s", source, target)
    return target


def _reader_from_folder(folder: Path) -> Any:
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import FileSystemPathPointer

    # NLTK only reads corpora under a folder of its data path: register our data root (appended, so a
    # user's own NLTK data keeps precedence)
    root = str(folder.parent.parent)
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": we only use English
        return WordNetCorpusReader(FileSystemPathPointer(str(folder)), None)


def _nltk_wordnet() -> Any | None:
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        wordnet.synsets("dog")
        return wordnet
    except (LookupError, OSError, ImportError):
        return None


_LOCK = threading.Lock()
_READERS: dict[tuple[Any, ...], Any] = {}


def load_wordnet(
    source_dir: str | os.PathLike | None = None,
    use_nltk_data: bool = True,
    nltk_data_root: str | os.PathLike | None = None,
) -> Any:
    """An NLTK ``WordNetCorpusReader``: the user's NLTK WordNet, else a cached copy, else one built now.

    Args:
        source_dir: a WordNet 3.0 database folder to build from (default ``$ST_CONTRAST_WORDNET_DIR``,
            else ``/usr/share/wordnet``).
        use_nltk_data: try NLTK's own data folders first (``nltk.corpus.wordnet``).
        nltk_data_root: where the cached copy lives (default ``cache_dir()/nltk_data``).

    Raises:
        LookupError: when no WordNet can be found or built; the message says how to install one.
    """
    source = Path(source_dir or os.environ.get(ENV_WORDNET_DIR) or DEBIAN_WORDNET_DIR)
    root = Path(nltk_data_root) if nltk_data_root is not None else wordnet_cache_root()
    key = (str(source), bool(use_nltk_data), str(root))
    with _LOCK:
        if key in _READERS:
            return _READERS[key]
        reader = _nltk_wordnet() if use_nltk_data else None
        if reader is None:
            cached = root / "corpora" / "wordnet"
            if not ((cached / "lexnames").is_file() and (cached / "data.noun").is_file()):
                if not (source / "data.noun").is_file():
                    tried = "" if use_nltk_data else " (not tried)"
                    raise LookupError(
                        f"WordNet was not found: NLTK has no 'wordnet' corpus{tried}, "
                        f"there is no cached copy in {cached}, and {source} holds no WordNet database to build one "
                        f"from. " + INSTALL_HINT
                    )
                build_wordnet_copy(source, root)
            reader = _reader_from_folder(cached)
        _READERS[key] = reader
        return reader


# ---------------------------------------------------------------------------------------------
# Lexicon: per-word facts, cached
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordEntry:
    """What the rewriter knows about one (lower-cased) word form."""

    word: str
    pos: str  # WordNet letter: n, v, a, r
    lemma: str
    tag: str  # Penn tag of the form, e.g. NNS, VBD, JJR
    synonyms: tuple[str, ...]  # base forms (WordNet lemma names, "_" -> " ")
    hypernyms: tuple[str, ...]
    antonyms: tuple[str, ...]


class WordNetLexicon:
    """Cached WordNet look-ups for the rewriter: part of speech, inflection, synonyms, hypernyms, antonyms.

    Args:
        wordnet: an NLTK WordNet reader (default :func:`load_wordnet`).
        max_senses: only the ``max_senses`` most frequent senses of a word give candidates (``None``: all
            senses, as in the official CLINE code).
        random_pool_min_count: words used as random replacements are lemmas tagged at least this many
            times in SemCor (frequent, plain words rather than WordNet's rarest entries).
        stop_words: words never replaced (default :data:`STOP_WORDS`).
    """

    def __init__(
        self,
        wordnet: Any | None = None,
        max_senses: int | None = None,
        random_pool_min_count: int = 5,
        stop_words: Iterable[str] | None = None,
    ) -> None:
        check_positive_int(max_senses, "max_senses", allow_none=True)
        self.wordnet = wordnet if wordnet is not None else load_wordnet()
        self.max_senses = max_senses
        self.random_pool_min_count = int(random_pool_min_count)
        self.stop_words = frozenset(w.lower() for w in stop_words) if stop_words is not None else STOP_WORDS
        self._entries: dict[str, WordEntry | None] = {}
        self._tag_counts: dict[tuple[str, str], int] | None = None
        self._pools: dict[str, tuple[str, ...]] = {}

    # -- corpus statistics ------------------------------------------------------------------
    @property
    def tag_counts(self) -> dict[tuple[str, str], int]:
        """SemCor tag counts summed per ``(lemma, pos)``, read once from ``index.sense``."""
        if self._tag_counts is None:
            counts: dict[tuple[str, str], int] = {}
            try:
                raw = self.wordnet.abspath("index.sense").open().read()
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            except (OSError, LookupError):
                logger.warning("WordNet has no index.sense: parts of speech are chosen by number of senses only")
                text = ""
            for line in text.splitlines():
                fields = line.split()
                if len(fields) != 4:
                    continue
                key, count = fields[0], int(fields[3])
                cut = key.find("%")
                if count and cut > 0:
                    pos = _SS_TYPE.get(key[cut + 1])
                    if pos:
                        name = (key[:cut], pos)
                        counts[name] = counts.get(name, 0) + count
            self._tag_counts = counts
        return self._tag_counts

    def random_pool(self, pos: str) -> tuple[str, ...]:
        """Frequent single-word lemmas of ``pos`` (sorted, so draws are reproducible)."""
        pool = self._pools.get(pos)
        if pool is None:
            words = {
                lemma
                for (lemma, p), count in self.tag_counts.items()
                if p == pos
                and count >= self.random_pool_min_count
                and lemma.isalpha()
                and lemma.islower()
                and len(lemma) >= 3
                and lemma not in self.stop_words
            }
            if not words:  # no tag counts: any plain single word of that part of speech
                words = {w for w in self.wordnet.all_lemma_names(pos) if w.isalpha() and w.islower() and len(w) >= 3}
            pool = tuple(sorted(words))
            self._pools[pos] = pool
        return pool

    # -- per word -----------------------------------------------------------------------------
    def entry(self, word: str) -> WordEntry | None:
        """The cached :class:`WordEntry` of a lower-cased word, or ``None`` if it is not a content word."""
        try:
            return self._entries[word]
        except KeyError:
            entry = self._entries[word] = self._lookup(word)
            return entry

    def _lookup(self, word: str) -> WordEntry | None:
        if word in self.stop_words or len(word) < 2 or not _PURE_ALPHA.fullmatch(word):
            return None
        wn = self.wordnet
        counts = self.tag_counts
        best: tuple[Any, ...] | None = None
        for rank, pos in enumerate(_POS_ORDER):
            synsets = wn.synsets(word, pos)
            if not synsets:
                continue
            bases = _base_forms(wn, word, pos)
            score = (sum(counts.get((b, pos), 0) for b in bases), len(synsets), -rank)
            if best is None or score > best[0]:
                best = (score, pos, bases, synsets)
        if best is None:
            return None
        _, pos, bases, synsets = best
        lemma = max(bases, key=lambda b: counts.get((b, pos), 0)) if bases else word
        tag = _penn_tag(word, lemma, pos)
        if self.max_senses is not None:
            synsets = synsets[: self.max_senses]
        exclude = {word, lemma}
        synonyms, hypernyms, antonyms = [], [], []
        for synset in synsets:
            synonyms.extend(lem.name() for lem in synset.lemmas())
            for hyper in synset.hypernyms():
                hypernyms.extend(lem.name() for lem in hyper.lemmas())
            own = [lem for lem in synset.lemmas() if lem.name().lower() in exclude]
            direct = [ant.name() for lem in own for ant in lem.antonyms()]
            if not direct and synset.pos() == "s":  # satellite adjective: antonyms of its head (indirect)
                for head in synset.similar_tos():
                    direct.extend(ant.name() for lem in head.lemmas() for ant in lem.antonyms())
            antonyms.extend(direct)
        return WordEntry(
            word=word,
            pos=pos,
            lemma=lemma,
            tag=tag,
            synonyms=self._candidates(synonyms, exclude),
            hypernyms=self._candidates(hypernyms, exclude),
            antonyms=self._candidates(antonyms, exclude),
        )

    def _candidates(self, names: Iterable[str], exclude: set[str]) -> tuple[str, ...]:
        # base forms only: inflecting every candidate up front would cost more than the look-up itself,
        # so the chosen one is inflected when used (see :func:`inflect`, cached)
        seen: dict[str, None] = {}
        for name in names:
            if _is_plain_lemma(name) and name.lower() not in exclude:
                seen.setdefault(name.replace("_", " "), None)
        return tuple(seen)


def _base_forms(wn: Any, word: str, pos: str) -> list[str]:
    morphy = getattr(wn, "_morphy", None)
    try:
        forms = list(morphy(word, pos)) if morphy is not None else [wn.morphy(word, pos)]
    except Exception:  # noqa: BLE001 - NLTK versions differ in morphy's signature
        forms = [wn.morphy(word, pos)]
    return [f for f in dict.fromkeys(forms) if f]


def _is_plain_lemma(name: str) -> bool:
    # lower-case letters, single words or underscore/hyphen compounds: no proper names, digits or abbreviations
    return name.islower() and all(part.isalpha() for part in re.split(r"[_\-]", name)) and len(name) >= 2


@functools.lru_cache(maxsize=200_000)
def _all_inflections(lemma: str, upos: str) -> dict[str, tuple[str, ...]]:
    from lemminflect import getAllInflections

    return getAllInflections(lemma, upos=upos)


def _penn_tag(word: str, lemma: str, pos: str) -> str:
    if word == lemma:
        return _BASE_TAG[pos]
    forms = _all_inflections(lemma, _UPOS[pos])
    for tag in _TAGS[pos]:
        if word in (f.lower() for f in forms.get(tag, ())):
            return tag
    return _BASE_TAG[pos]


@functools.lru_cache(maxsize=200_000)
def inflect(lemma: str, tag: str, pos: str) -> str:
    """``lemma`` (possibly several words) inflected to Penn ``tag``: the head word of a noun phrase (the last
    word, or the one before "of") or of a verb phrase (the first word) carries the inflection; words
    lemminflect cannot inflect stay as they are."""
    if tag == _BASE_TAG.get(pos):
        return lemma
    from lemminflect import getInflection

    words = lemma.split(" ")
    if pos == "v":
        head = 0
    elif "of" in words[1:]:  # "side of meat" -> "sides of meat"
        head = words.index("of", 1) - 1
    else:
        head = len(words) - 1
    forms = getInflection(words[head], tag=tag)
    if forms:
        words[head] = forms[0]
    return " ".join(words)


def _match_case(replacement: str, original: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


# ---------------------------------------------------------------------------------------------
# Rewriter
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """One replaced word: its index among the sentence's words, the old and new text, and why."""

    position: int
    original: str
    replacement: str
    relation: Relation


@dataclass(frozen=True)
class Rewrite:
    """A CLINE triple and the replacements that made each rewrite."""

    original: str
    synonym: str
    antonym: str
    synonym_replacements: tuple[Replacement, ...]
    antonym_replacements: tuple[Replacement, ...]


@dataclass
class RewriteResult:
    """The rewrites of a corpus, and the indices of the sentences skipped (no replaceable word)."""

    rewrites: list[Rewrite]
    skipped: list[int] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


class WordNetRewriter:
    """CLINE's data maker: ``x -> (x_syn, x_ant)`` by WordNet replacement of content words.

    For a sentence with ``n`` content words (nouns, verbs, adjectives, adverbs per :class:`WordNetLexicon`),
    ``k = max(1, floor(replace_ratio * n))`` words are replaced in each rewrite:

    - ``x_syn``: ``k`` words that have a synonym (or hypernym) get one: a hypernym with probability
      ``hypernym_probability`` when the word has both, else a synonym (fewer than ``k`` if fewer words
      have one);
    - ``x_ant``: words with a WordNet antonym are replaced by one first; the rest of the ``k`` by random
      frequent words of the same part of speech (so ``x_ant`` always exists).

    Replacements keep the word's inflection and capitalisation. A sentence with no word that has a
    synonym or hypernym cannot make a positive: it is skipped (``rewrite`` returns ``None``,
    ``rewrite_all`` counts it), never returned unchanged. Each sentence's random choices depend only on
    ``seed`` and the sentence text, so results do not depend on order, batching or processes.

    Args:
        replace_ratio: the largest fraction of content words replaced, in ``(0, 1]`` (paper: 0.5).
        hypernym_probability: chance of a hypernym instead of a synonym for ``x_syn``, in ``[0, 1]``.
        seed: the random seed.
        max_senses, random_pool_min_count, stop_words: see :class:`WordNetLexicon`.
        lexicon: a shared :class:`WordNetLexicon` (its cache is reused); built on first use otherwise.
        skip_proper_nouns: leave capitalised words after the first word alone.
    """

    def __init__(
        self,
        replace_ratio: float = 0.5,
        hypernym_probability: float = 0.25,
        seed: int = 0,
        max_senses: int | None = None,
        random_pool_min_count: int = 5,
        stop_words: Iterable[str] | None = None,
        lexicon: WordNetLexicon | None = None,
        skip_proper_nouns: bool = True,
    ) -> None:
        self.replace_ratio = check_rate(replace_ratio, "replace_ratio", low_open=True)
        self.hypernym_probability = check_rate(hypernym_probability, "hypernym_probability")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self.skip_proper_nouns = skip_proper_nouns
        self._lexicon = lexicon
        self._lexicon_args = dict(
            max_senses=max_senses, random_pool_min_count=random_pool_min_count, stop_words=stop_words
        )
        if lexicon is None:
            check_positive_int(max_senses, "max_senses", allow_none=True)

    @property
    def lexicon(self) -> WordNetLexicon:
        if self._lexicon is None:
            self._lexicon = WordNetLexicon(**self._lexicon_args)
        return self._lexicon

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "replace_ratio": self.replace_ratio,
            "hypernym_probability": self.hypernym_probability,
            "seed": self.seed,
            "max_senses": self.lexicon.max_senses if self._lexicon else self._lexicon_args["max_senses"],
            "skip_proper_nouns": self.skip_proper_nouns,
        }

    def rewrite(self, sentence: str) -> Rewrite | None:
        """``(x, x_syn, x_ant)`` for one sentence, or ``None`` when no word can be replaced by a synonym."""
        if not isinstance(sentence, str):
            raise TypeError(f"sentences must be strings, got {type(sentence).__name__}")
        lexicon = self.lexicon
        spans: list[tuple[int, int, str]] = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(sentence)]
        content: list[tuple[int, WordEntry]] = []
        for index, (_, _, text) in enumerate(spans):
            if self.skip_proper_nouns and index > 0 and text[:1].isupper() and not text.isupper():
                continue
            entry = lexicon.entry(text.lower())
            if entry is not None:
                content.append((index, entry))
        positive_capable = [
            (i, e) for i, e in content if e.synonyms or (e.hypernyms and self.hypernym_probability > 0)
        ]
        if not positive_capable:
            return None
        rng = random.Random(f"{self.seed}\x1f{sentence}")
        k = max(1, int(self.replace_ratio * len(content)))

        synonym_replacements = []
        for i, entry in sorted(rng.sample(positive_capable, min(k, len(positive_capable))), key=lambda x: x[0]):
            use_hypernym = bool(entry.hypernyms) and (not entry.synonyms or rng.random() < self.hypernym_probability)
            choices, relation = (entry.hypernyms, "hypernym") if use_hypernym else (entry.synonyms, "synonym")
            word = spans[i][2]
            new = _inflected_choice(choices, entry, rng)
            synonym_replacements.append(Replacement(i, word, _match_case(new, word), relation))

        with_antonym = [(i, e) for i, e in content if e.antonyms]
        without = [(i, e) for i, e in content if not e.antonyms]
        rng.shuffle(with_antonym)
        rng.shuffle(without)
        antonym_replacements = []
        for i, entry in sorted((with_antonym + without)[:k], key=lambda x: x[0]):
            word = spans[i][2]
            if entry.antonyms:
                new, relation = _inflected_choice(entry.antonyms, entry, rng), "antonym"
            else:
                new, relation = self._random_word(entry, rng), "random"
            antonym_replacements.append(Replacement(i, word, _match_case(new, word), relation))

        return Rewrite(
            original=sentence,
            synonym=_splice(sentence, spans, synonym_replacements),
            antonym=_splice(sentence, spans, antonym_replacements),
            synonym_replacements=tuple(synonym_replacements),
            antonym_replacements=tuple(antonym_replacements),
        )

    def _random_word(self, entry: WordEntry, rng: random.Random) -> str:
        pool = self.lexicon.random_pool(entry.pos)
        avoid = {entry.word, entry.lemma, *entry.synonyms}
        candidate = entry.word
        for _ in range(20):
            lemma = pool[rng.randrange(len(pool))]
            if lemma not in avoid:
                candidate = inflect(lemma, entry.tag, entry.pos)
                if candidate != entry.word:
                    return candidate
        return candidate

    def rewrite_all(self, sentences: Iterable[str]) -> RewriteResult:
        """Rewrite a corpus; sentences without a replaceable word are skipped and their indices listed."""
        result = RewriteResult(rewrites=[])
        for index, sentence in enumerate(sentences):
            rewrite = self.rewrite(sentence)
            if rewrite is None:
                result.skipped.append(index)
            else:
                result.rewrites.append(rewrite)
        return result


def _inflected_choice(choices: Sequence[str], entry: WordEntry, rng: random.Random) -> str:
    """A random candidate, inflected like the word (another one if it inflects to the word itself)."""
    first = rng.randrange(len(choices))
    for offset in range(len(choices)):
        form = inflect(choices[(first + offset) % len(choices)], entry.tag, entry.pos)
        if form.lower() != entry.word:
            return form
    return form


def _splice(sentence: str, spans: Sequence[tuple[int, int, str]], replacements: Sequence[Replacement]) -> str:
    pieces, last = [], 0
    for replacement in replacements:  # sorted by position
        start, end, _ = spans[replacement.position]
        pieces.append(sentence[last:start])
        pieces.append(replacement.replacement)
        last = end
    pieces.append(sentence[last:])
    return "".join(pieces)

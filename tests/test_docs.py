"""Every code block in README.md and docs/**/*.md runs (or, for commands, parses) as written.

One test per page (``test_page``, parametrised by the page's path): the page's python blocks run in order in
one fresh namespace in an empty working folder, on tiny offline stand-ins; its shell commands are checked by
rule; a failure names the page, the block's first line and the exception. The rules live in
``tests/docs_runner.py`` (its docstring is the reference; ``python tests/docs_runner.py [PAGE]`` prints what
happens to each block). In short:

* python: run, with quoted model names (``"path/to/..."``, hub ids such as ``"bert-base-uncased"``, the
  ``"minilm"`` alias) replaced by tiny random models from ``st_contrast.testing``; ``ST_CONTRAST_DATA`` set
  to a copy of the shared data with the big files cut to small samples, and the reader's own files the docs
  name (``sentences.txt``, ``wiki1m.txt``, ``wikitext2_valid.txt``) present in the working folder; every
  ``SentenceTransformerTrainer.train()`` / ``model.fit`` stopped after 2 steps (evaluating and saving each
  step where the example evaluates or saves by steps).
* shell, run for real: ``st-contrast --version``, ``st-contrast methods``, ``st-contrast fairseq-user-dir``
  (also inside ``"$(...)"``).
* shell, parsed only: ``st-contrast train`` (dry, up to training: CLI parser, ``--config`` file, ``TrainConfig``,
  the loss's arguments, the output folder's ``--resume`` / ``--overwrite`` rules), every other ``st-contrast``
  subcommand (CLI parser), and ``fairseq-*`` commands and the ``st-contrast fairseq-*`` wrappers (fairseq's own
  parser with our ``--user-dir``; needs fairseq).
* shell, not executed, by rule: ``pip`` (the st-contrast extras it names must exist), ``make`` (the targets
  must exist), and installers, launchers and shell built-ins (``apt-get``, ``torchrun``, ``accelerate``,
  ``python``, ``bash``, ``cd``, ... : ``NOT_EXECUTED`` in the runner). A command with no rule fails.
* toml / yaml: parsed. json and unlabelled blocks (formulas, formats): prose, not checked.

Markers, on the line before a block: ``<!-- docs-test: skip reason=... -->`` (not run; a reason is required,
and ``test_skips_are_few_and_explained`` lists and bounds them) and ``<!-- docs-test: given NAME, ... -->``
(a fragment using names its prose describes, defined from the runner's ``GIVEN`` table).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from st_contrast.cli.fairseq import user_dir as fairseq_user_dir
from tests import docs_runner
from tests.docs_runner import Block, DocsEnvironment, DocsTestError, check_page, extract_blocks, shell_commands

ROOT = Path(__file__).resolve().parent.parent
PAGES = docs_runner.pages(ROOT)
MAX_SKIPS = 4  # blocks that cannot run anywhere in a test (network, GPU, cluster); keep it small


def _has_python(page: str) -> bool:
    return any(b.lang in docs_runner.PYTHON and not b.skip for b in docs_runner.page_blocks(page, ROOT))


def _has_fairseq(page: str) -> bool:
    """Whether a shell block of ``page`` has a command for fairseq's parser (a child process importing fairseq)."""
    for block in docs_runner.page_blocks(page, ROOT):
        if block.lang in docs_runner.SHELL and not block.skip:
            for command in shell_commands(block):
                argv = command.argv[1:] if command.argv[0] == "st-contrast" else command.argv
                if argv and argv[0] in docs_runner.FAIRSEQ_COMMANDS:
                    return True
    return False


@pytest.fixture(scope="session")
def docs_env(tmp_path_factory, data_dir) -> DocsEnvironment:
    return DocsEnvironment.build(Path(data_dir), tmp_path_factory.mktemp("docs-env"))


@pytest.fixture(scope="session")
def fairseq_parser(tmp_path_factory) -> docs_runner.SharedFairseqParser:
    pytest.importorskip("fairseq", reason="fairseq is not installed (pip install fairseq-fixed==0.12.3.1)")
    return docs_runner.SharedFairseqParser(PAGES, tmp_path_factory.mktemp("docs-shell"), ROOT)


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=[pytest.mark.slow] if _has_python(p) or _has_fairseq(p) else []) for p in PAGES]
)
def test_page(page, request, tmp_path):
    env = request.getfixturevalue("docs_env") if _has_python(page) else None
    parser = request.getfixturevalue("fairseq_parser") if _has_fairseq(page) else None
    report = check_page(page, env, tmp_path, fairseq_parser=parser, root=ROOT)
    print(f"{page}:\n{report.summary()}")
    assert not report.errors, f"{len(report.errors)} failing block(s) in {page}:\n\n" + "\n\n".join(report.errors)


def test_skips_are_few_and_explained():
    skipped = [b for page in PAGES for b in docs_runner.page_blocks(page, ROOT) if b.skip]
    listing = "\n".join(f"{b.where}: {b.skip}" for b in skipped)
    print(f"{len(skipped)} skipped docs block(s):\n{listing}")
    assert len(skipped) <= MAX_SKIPS, f"too many skipped docs blocks ({len(skipped)} > {MAX_SKIPS}):\n{listing}"
    assert all(b.skip.strip() for b in skipped)


def test_every_page_is_checked():
    assert "README.md" in PAGES
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk <= set(PAGES)


# -- the runner itself (fast) -----------------------------------------------------------------------------

PAGE = """\
# A page

Some prose.

```python
x = 1
```

<!-- docs-test: skip reason=needs a GPU -->

```python
import torch; torch.ones(1).cuda()
```

<!-- docs-test: given model -->
```python
y = x + 1
```

- a list item:

  ```bash
  st-contrast methods   # a comment; with a semicolon
  ```
"""


def test_extract_blocks_reads_languages_lines_and_markers():
    blocks = extract_blocks(PAGE, "page.md")
    assert [(b.line, b.lang, b.skip, b.given) for b in blocks] == [
        (5, "python", None, ()),
        (11, "python", "needs a GPU", ()),
        (16, "python", None, ("model",)),
        (22, "bash", None, ()),
    ]
    assert blocks[0].source == "x = 1\n"
    assert blocks[3].source.startswith("st-contrast methods")  # the list item's indentation is removed


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("<!-- docs-test: skip -->", "needs a reason"),
        ("<!-- docs-test: skip reason= -->", "needs a reason"),
        ("<!-- docs-test: given nonsense -->", "not provided"),
        ("<!-- docs-test: run-twice -->", "unknown docs-test marker"),
    ],
)
def test_bad_markers_are_errors(marker, message):
    with pytest.raises(DocsTestError, match=message):
        extract_blocks(f"{marker}\n```python\nx = 1\n```\n", "page.md")


def test_unclosed_block_is_an_error():
    with pytest.raises(DocsTestError, match=r"page.md:1: code block never closed"):
        extract_blocks("```python\nx = 1\n", "page.md")


def test_shell_commands_join_continuations_and_drop_comments_assignments_and_redirections():
    source = textwrap.dedent(
        """\
        # a comment line
        OMP_NUM_THREADS=1 st-contrast train --model m \\
            --batch-size 8   # trailing comment; with a semicolon
        st-contrast fairseq-generate data-bin --beam 5 > out.txt
        make demo && make test
        fairseq-train data-bin --user-dir "$(st-contrast fairseq-user-dir)" ...
        """
    )
    commands = shell_commands(Block("page.md", 10, "bash", source))
    assert [(c.line, c.argv, c.partial) for c in commands] == [
        (12, ["st-contrast", "train", "--model", "m", "--batch-size", "8"], False),
        (14, ["st-contrast", "fairseq-generate", "data-bin", "--beam", "5"], False),
        (15, ["make", "demo"], False),
        (15, ["make", "test"], False),
        (16, ["fairseq-train", "data-bin", "--user-dir", "$(st-contrast fairseq-user-dir)"], True),
    ]


def _write_page(root: Path, text: str) -> str:
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "page.md").write_text(text, encoding="utf-8")
    for name in ("pyproject.toml", "Makefile"):
        (root / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    return "docs/page.md"


def test_a_failing_python_block_is_reported_with_page_line_and_exception(tmp_path):
    env = DocsEnvironment(data_dir=tmp_path, models={})
    page = _write_page(
        tmp_path, "text\n\n```python\na = 1\n```\n\n```python\nb = a + undefined_name\n```\n\n```python\nc = 3\n```\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    report = check_page(page, env, work, fairseq_parser=None, root=tmp_path)
    assert [o.status for o in report.outcomes] == ["ran", "failed", "not run"]
    assert len(report.errors) == 1
    assert report.errors[0].startswith("docs/page.md:7: python block raised")
    assert "docs/page.md:8: b = a + undefined_name" in report.errors[0]  # the block's own line in the page
    assert "NameError: name 'undefined_name' is not defined" in report.errors[0]


def test_blocks_of_a_page_share_one_namespace_and_pages_do_not(tmp_path):
    env = DocsEnvironment(data_dir=tmp_path, models={})
    work = tmp_path / "work"
    work.mkdir()
    page = _write_page(tmp_path, "```python\nshared = 41\n```\n\n```python\nassert shared + 1 == 42\n```\n")
    assert not check_page(page, env, work, fairseq_parser=None, root=tmp_path).errors
    page = _write_page(tmp_path, "```python\nprint(shared)\n```\n")
    assert "NameError" in check_page(page, env, work, fairseq_parser=None, root=tmp_path).errors[0]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("st-contrast train --model m --train-file f --output-dir o --batch-sise 8", "unrecognized arguments"),
        ("st-contrast train --model m --train-file f --output-dir o --batch-size eight", "batch_size"),
        ("st-contrast train --model m --train-file f --output-dir o --loss-arg temprature=0.05", "temperature"),
        ("st-contrast train --model m --train-file f --output-dir o --pooling avg", "invalid choice"),
        ("st-contrast evaluate sts --modle out/", "the following arguments are required: --model"),
        ("st-contrast no-such-command", "invalid choice"),
        ('pip install "st-contrast[trian]"', "no extra(s) ['trian']"),
        ("make no-such-target", "no target(s) ['no-such-target']"),
        ("frobnicate --all", "no docs-test rule for 'frobnicate'"),
    ],
)
def test_shell_rules_catch_stale_commands(tmp_path, command, message):
    page = _write_page(tmp_path, f"```bash\n{command}\n```\n")
    report = check_page(page, None, tmp_path, fairseq_parser=None, root=tmp_path)
    assert len(report.errors) == 1, report.summary()
    assert report.errors[0].startswith("docs/page.md:2 (shell block at line 1)")
    assert message in report.errors[0]


def test_shell_rules_accept_current_commands(tmp_path):
    commands = """\
st-contrast --version
st-contrast methods
st-contrast train --model m --train-file f --output-dir o --batch-size 8 --loss-arg temperature=0.05 --no-eval
pip install -e ".[train,dev]"
make demo
torchrun --nproc_per_node 2 train.py
"""
    page = _write_page(tmp_path, f"```bash\n{commands}```\n")
    report = check_page(page, None, tmp_path, fairseq_parser=None, root=tmp_path)
    assert not report.errors, report.errors
    assert [o.status for o in report.outcomes] == [
        "ran",
        "ran",
        "parsed",
        "not executed",
        "not executed",
        "not executed",
    ]
    assert "st-contrast" in report.outcomes[0].detail  # --version printed the version


def test_fairseq_commands_go_to_fairseqs_parser_with_the_user_dir(tmp_path):
    seen = []

    def parser(commands):
        seen.extend(commands)
        return [None, "unrecognized arguments: --no-such-flag"]

    page = _write_page(
        tmp_path,
        "```bash\nst-contrast fairseq-train data-bin --task translation ...\n"
        'fairseq-train data-bin --user-dir "$(st-contrast fairseq-user-dir)" --no-such-flag\n```\n',
    )
    report = check_page(page, None, tmp_path, fairseq_parser=parser, root=tmp_path)
    user_dir = fairseq_user_dir()
    assert seen == [
        ["fairseq-train", "data-bin", "--task", "translation", *docs_runner.PARTIAL_FAIRSEQ_DEFAULTS],
        ["fairseq-train", "data-bin", "--user-dir", user_dir, "--no-such-flag"],
    ]
    assert len(report.errors) == 1 and "docs/page.md:3" in report.errors[0] and "--no-such-flag" in report.errors[0]


def test_model_names_are_replaced_by_tiny_models_only_as_whole_literals(tmp_path):
    env = DocsEnvironment(data_dir=tmp_path, models={"bert": tmp_path / "b", "roberta": tmp_path / "r"})
    source = 'a = "path/to/bert"; b = "path/to/roberta-base"; c = "bert-base-uncased"; d = "see bert-base-uncased"\n'
    out = env.substitute(source)
    assert out == (
        f"a = {str(tmp_path / 'b')!r}; b = {str(tmp_path / 'r')!r}; c = {str(tmp_path / 'b')!r}; "
        'd = "see bert-base-uncased"\n'
    )


def test_training_in_a_docs_block_stops_after_two_steps(tiny_model, sentences, tmp_path):
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data import sentence_dataset
    from st_contrast.losses import SimCSELoss

    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_train_epochs=5, report_to=[]
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=args, train_dataset=sentence_dataset(sentences * 4), loss=SimCSELoss(tiny_model)
    )
    steps: list[int] = []
    with docs_runner.capped_training(steps):
        trainer.train()
    assert trainer.state.global_step == docs_runner.MAX_TRAIN_STEPS == 2  # uncapped: 5 epochs of 16 steps
    assert steps == [2]
    assert (
        SentenceTransformerTrainer.train is not None and "capped" not in SentenceTransformerTrainer.train.__qualname__
    )


def test_sample_data_cuts_the_listed_files_and_links_the_rest(tmp_path):
    real = tmp_path / "real"
    (real / "unlabeled").mkdir(parents=True)
    (real / "unlabeled" / "wiki_sentences.txt").write_text("".join(f"sentence {i}\n" for i in range(1000)))
    (real / "unlabeled" / "other.txt").write_text("kept whole\n")
    (real / "intent").mkdir()
    clinc = {"train": [["q", "a"]] * 5 + [["r", "b"]] * 5, "oos_train": [["x", "oos"]] * 9}
    (real / "intent" / "clinc150_data_full.json").write_text(json.dumps(clinc))
    (real / "README.md").write_text("readme\n")
    sample = docs_runner.build_sample_data(real, tmp_path / "sample")
    wiki = (sample / "unlabeled" / "wiki_sentences.txt").read_text().splitlines()
    assert len(wiki) == docs_runner.DATA_SAMPLES["unlabeled/wiki_sentences.txt"][1] and wiki[0] == "sentence 0"
    assert (sample / "unlabeled" / "other.txt").is_symlink() and (sample / "README.md").is_symlink()
    cut = json.loads((sample / "intent" / "clinc150_data_full.json").read_text())
    assert cut == {"train": [["q", "a"]] * 3 + [["r", "b"]] * 3, "oos_train": [["x", "oos"]] * 3}


def test_given_names_are_defined_only_when_missing(tmp_path):
    env = DocsEnvironment(data_dir=tmp_path, models={})
    page = _write_page(
        tmp_path,
        "```python\ntexts = ['mine']\n```\n\n<!-- docs-test: given texts, class_ids -->\n"
        "```python\nassert texts == ['mine'] and len(class_ids) == 16\n```\n",
    )
    work = tmp_path / "work"
    work.mkdir()
    report = check_page(page, env, work, fairseq_parser=None, root=tmp_path)
    assert not report.errors, report.errors
    assert report.outcomes[1].detail == "given texts, class_ids"


def test_train_commands_of_a_block_see_the_folders_earlier_commands_left(tmp_path):
    commands = """\
st-contrast train --model m --train-file f --output-dir out/run --batch-size 8
st-contrast train --output-dir out/run --resume
st-contrast train --output-dir out/run --resume --max-steps 20
st-contrast train --output-dir out/run --resume --batch-size 16
st-contrast train --model m --train-file f --output-dir out/run
st-contrast train --model m --train-file f --output-dir out/run --overwrite
st-contrast train --output-dir out/never --resume
"""
    page = _write_page(tmp_path, f"```bash\n{commands}```\n")
    work = tmp_path / "work"
    work.mkdir()
    report = check_page(page, None, work, fairseq_parser=None, root=tmp_path)
    assert [o.status for o in report.outcomes] == [
        "parsed",
        "parsed",
        "parsed",
        "failed",
        "failed",
        "parsed",
        "failed",
    ]
    assert "settings that differ from the stored run (batch_size: stored 8, now 16)" in report.outcomes[3].detail
    assert "is not empty; refusing to overwrite it" in report.outcomes[4].detail
    assert "missing --model, --train-file" in report.outcomes[6].detail
    assert not (tmp_path / "out").exists()  # the runs' folders are made in a scratch folder, not the checkout

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter

import pytest

from st_contrast.data.reading import DataFormatError
from st_contrast.data.relation import (
    Bag,
    RelationInstance,
    cil_dataset,
    cil_examples,
    cil_rows,
    group_bags,
    mark_entities,
    parse_semeval2010,
    pseudo_bags,
    read_fewrel_nyt,
    read_semeval2010,
    relation_ids,
    split_bags,
)
from tests.data.malformed import VARIANTS, ReaderCase, check

FEWREL_SMALL = {
    "P413": [
        {"tokens": ["Cris", "Carter", "plays", "as", "{HUGE}"], "h": ["Cris Carter", "Q1", [[0, 1]]],
         "t": ["{HUGE}", "Q2", [[4]]]},
        {"tokens": ["Ann", "is", "a", "goalkeeper"], "h": ["Ann", "Q3", [[0]]], "t": ["goalkeeper", "Q4", [[3]]]},
    ],
    "P17": [{"tokens": ["Paris", "in", "France"], "h": ["Paris", "Q5", [[0]]], "t": ["France", "Q6", [[2]]]}],
}  # fmt: skip
_FEWREL_LINES = json.dumps(FEWREL_SMALL, indent=1).split("\n")

FEWREL_FILE = ReaderCase(
    name="fewrel_val_nyt.json",
    lines=_FEWREL_LINES,
    read=lambda path: read_fewrel_nyt(path),
    rows=3,
    record_line=next(i for i, line in enumerate(_FEWREL_LINES, start=1) if '"Carter"' in line),
    blank_lines_warn=False,  # JSON whitespace
    error_line_of_truncation=False,
)

SEMEVAL_LINES = [
    '1\t"The <e1>child</e1> was wrapped into the <e2>cradle</e2> with {HUGE} care."',
    "Component-Whole(e2,e1)",
    "Comment: a comment",
    "",
    '2\t"He said "the <e1>ship</e1> left the <e2>port</e2>.""',
    "Entity-Origin(e1,e2)",
    "Comment:",
    "",
    '3\t"<e2>Rain</e2>, not <e1>wind</e1>, caused it."',
    "Other",
    "Comment: the last one",
    "",
]
SEMEVAL_FILE = ReaderCase(
    name="TRAIN_FILE.TXT",
    lines=SEMEVAL_LINES,
    read=lambda path: read_semeval2010("train", path=path),
    rows=3,
    record_line=5,
    blank_after=(3, 4, 7, 8, 11, 12),  # blank lines separate examples; inside one they are an error
    blank_lines_warn=False,
    truncated_line=10,  # the last label, cut short
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_fewrel_files(variant, tmp_path, caplog):
    check(FEWREL_FILE, variant, tmp_path, caplog)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_semeval_files(variant, tmp_path, caplog):
    check(SEMEVAL_FILE, variant, tmp_path, caplog)


@pytest.fixture(scope="module")
def fewrel(data_dir):
    return read_fewrel_nyt(data_dir=data_dir)


def test_read_fewrel_nyt(fewrel):
    assert len(fewrel) == 2500
    counts = Counter(instance.relation for instance in fewrel)
    assert len(counts) == 25 and set(counts.values()) == {100}
    first = fewrel[0]
    assert first.head_text == "Cris Carter" and first.tail_text == "wide receiver"
    assert first.head_id == "Q1140141" and first.tail_id == "Q918224"
    # every pair is distinct, so the natural bags hold one sentence each
    assert len(group_bags(fewrel)) == 2500


def test_read_semeval2010_from_the_tarball(data_dir):
    train = read_semeval2010("train", data_dir=data_dir)
    test = read_semeval2010("test", data_dir=data_dir)
    assert len(train) == 8000 and len(test) == 2717
    first = train[0]
    assert (first.head_text, first.tail_text) == ("configuration", "elements")
    assert first.relation == "Component-Whole(e2,e1)"
    assert test[0].uid == "8001" and test[0].relation == "Message-Topic(e1,e2)"
    labels = relation_ids(train + test, na="Other")
    assert len(labels) == 19 and labels["Other"] == 0
    assert Counter(instance.relation for instance in test)["Other"] == 454
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        read_semeval2010("dev", data_dir=data_dir)


def test_parse_semeval_tags_glued_to_punctuation():
    text = (
        '1\t"The <e1>child\'s toy</e1> was in the <e2>box</e2>."\r\nContent-Container(e1,e2)\r\nComment: x\r\n\r\n'
        '2\t"<e2>Rain</e2>, not <e1>wind</e1>, caused it."\nCause-Effect(e2,e1)\nComment:\n\n'
    )
    first, second = parse_semeval2010(text)
    assert first.head_text == "child's toy" and first.tail_text == "box" and first.tokens[-1] == "."
    assert second.tail == (0, 1) and second.head_text == "wind" and second.relation == "Cause-Effect(e2,e1)"
    with pytest.raises(ValueError, match="expected one <e1>"):
        parse_semeval2010('3\t"no entities here"\nOther\n')


def test_instance_validates_spans():
    with pytest.raises(ValueError, match="not a non-empty span"):
        RelationInstance(("a", "b"), (1, 1), (0, 1), "r")
    with pytest.raises(ValueError, match="overlap"):
        RelationInstance(("a", "b", "c"), (0, 2), (1, 3), "r")


def test_mark_entities_and_cropping():
    instance = RelationInstance(tuple("w0 w1 w2 H w4 w5 T1 T2 w8 w9 w10 w11".split()), (3, 4), (6, 8), "r")
    assert mark_entities(instance) == "w0 w1 w2 [E1] H [/E1] w4 w5 [E2] T1 T2 [/E2] w8 w9 w10 w11"
    cropped = mark_entities(instance, max_words=7).split()
    assert "[E1] H [/E1]" in " ".join(cropped) and "[E2] T1 T2 [/E2]" in " ".join(cropped)
    assert len([w for w in cropped if not w.startswith("[")]) == 7
    # entities far apart: the middle is cut, both entities and markers survive
    far = RelationInstance(tuple(["H"] + [f"m{i}" for i in range(50)] + ["T"]), (0, 1), (51, 52), "r")
    text = mark_entities(far, max_words=6)
    assert text == "[E1] H [/E1] m0 m1 m48 m49 [E2] T [/E2]"
    # adjacent entities, tail first
    adjacent = RelationInstance(("T", "H"), (1, 2), (0, 1), "r")
    assert mark_entities(adjacent) == "[E2] T [/E2] [E1] H [/E1]"
    assert mark_entities(adjacent, markers=("<h>", "</h>", "<t>", "</t>")) == "<t> T </t> <h> H </h>"


def test_pseudo_bags_cover_each_sentence_once_with_one_relation(fewrel):
    bags = pseudo_bags(fewrel, 4, seed=3)
    assert all(len({i.relation for i in bag.instances}) == 1 for bag in bags)
    assert all(len(bag) == 4 for bag in bags)  # 100 per relation
    assert sorted(i.uid for bag in bags for i in bag.instances) == sorted(i.uid for i in fewrel)
    again = pseudo_bags(fewrel, 4, seed=3)
    assert [[i.uid for i in b.instances] for b in bags] == [[i.uid for i in b.instances] for b in again]
    other = pseudo_bags(fewrel, 4, seed=4)
    assert [[i.uid for i in b.instances] for b in bags] != [[i.uid for i in b.instances] for b in other]
    assert sorted(len(b) for b in pseudo_bags(fewrel[:7], 3)) == [1, 3, 3]
    with pytest.raises(ValueError, match="pseudo-bag size must be >= 1"):
        pseudo_bags(fewrel, 0)


def test_group_bags_by_entity_pair_and_relation():
    a = RelationInstance(("x", "y"), (0, 1), (1, 2), "r1", "X", "Y", "1")
    b = RelationInstance(("x", "and", "y"), (0, 1), (2, 3), "r1", "X", "Y", "2")
    c = RelationInstance(("x", "y"), (0, 1), (1, 2), "r2", "X", "Y", "3")
    bags = group_bags([a, b, c])
    assert [[i.uid for i in bag.instances] for bag in bags] == [["1", "2"], ["3"]]


def test_split_bags_holds_out_whole_bags(fewrel):
    bags = group_bags(fewrel)
    train, test = split_bags(bags, test_fraction=0.2, seed=0)
    assert len(train) + len(test) == len(bags) and len(test) == 500
    assert not {b.key for b in train} & {b.key for b in test}
    assert Counter(b.relation for b in test) == Counter({r: 20 for r in {b.relation for b in bags}})
    assert [b.key for b in split_bags(bags, 0.2, seed=0)[1]] == [b.key for b in test]
    with pytest.raises(ValueError, match="test_fraction must be in"):
        split_bags(bags, 1.0)


def test_cil_rows_layout_anchor_and_filling(fewrel):
    rel2id = relation_ids(fewrel)
    bags = [
        Bag(("b",), fewrel[0].relation, [fewrel[0], fewrel[1], fewrel[2]]),
        Bag(("c",), fewrel[100].relation, [fewrel[100]]),
    ]
    seen = []

    def augment(instance, seed):
        seen.append(instance.uid)
        return instance

    rows = cil_rows(bags, rel2id, bag_size=2, augment=augment, seed=0, max_words=None)
    assert list(rows[0]) == ["sentence_1", "sentence_2", "augmented", "label"]
    assert rows[0]["label"] == rel2id[fewrel[0].relation] and rows[1]["label"] == rel2id[fewrel[100].relation]
    # the augmented column is the view of the anchor, which comes first
    anchors = {i.uid: mark_entities(i) for i in fewrel[:3] + [fewrel[100]]}
    assert [anchors[uid] for uid in seen] == [rows[0]["sentence_1"], rows[1]["sentence_1"]]
    assert rows[0]["sentence_1"] != rows[0]["sentence_2"]
    # a one-sentence bag is filled by repetition
    assert rows[1]["sentence_1"] == rows[1]["sentence_2"] == rows[1]["augmented"]
    assert all("[E1]" in text and "[E2]" in text for row in rows for key, text in row.items() if key != "label")
    with pytest.raises(ValueError, match="unknown relation 'nope'"):
        cil_rows([Bag(("d",), "nope", [fewrel[0]])], rel2id, 2)


def test_cil_dataset_and_examples(fewrel):
    bags = pseudo_bags(fewrel[:300], 3, seed=0)
    rel2id = relation_ids(fewrel)
    dataset = cil_dataset(bags, rel2id, 3)
    assert dataset.column_names == ["sentence_1", "sentence_2", "sentence_3", "augmented", "label"]
    assert len(dataset) == len(bags)
    examples = cil_examples(bags, rel2id, 3)
    assert len(examples[0].texts) == 4 and examples[0].label == dataset[0]["label"]
    assert examples[0].texts[0] == dataset[0]["sentence_1"]


def _fewrel_with(change) -> dict:
    data = json.loads(json.dumps(FEWREL_SMALL))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["P17"][0].pop("tokens"), r"P17\[0\]: malformed FewRel item \(missing 'tokens'\)"),
        (lambda d: d["P17"][0].update(tokens="Paris in France"), r"P17\[0\]: .*tokens must be a list of strings"),
        (lambda d: d["P17"][0].update(h=["Paris", "Q5"]), r"P17\[0\]: .*'h' must be \[name, id"),
        (lambda d: d["P17"][0].update(h=["Paris", "Q5", []]), r"P17\[0\]: .*'h' has no mention positions"),
        (lambda d: d["P17"][0].update(h=["Paris", "Q5", [[0, 2]]]), r"P17\[0\]: .*not consecutive token indices"),
        (lambda d: d["P17"][0].update(h=["Paris", "Q5", [["0"]]]), r"P17\[0\]: .*token indices \(integers\)"),
        (lambda d: d["P17"][0].update(t=["France", "Q6", [[5]]]), r"P17\[0\]: .*not a non-empty span"),
        (lambda d: d["P17"][0].update(t=["France", "Q6", [[0]]]), r"P17\[0\]: .*overlap"),
        (lambda d: d["P17"].append("a sentence"), r"P17\[1\]: .*the item is a str, not an object"),
        (lambda d: d.update(P17={"tokens": []}), r"P17: expected a list of sentences"),
    ],
)
def test_malformed_fewrel_items_name_the_relation_and_index(tmp_path, change, message):
    path = tmp_path / "fewrel.json"
    path.write_text(json.dumps(_fewrel_with(change)), encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        read_fewrel_nyt(path)
    assert str(info.value).startswith(f"{path}: ")


def test_semeval_keeps_quotes_inside_the_sentence(tmp_path):
    path = tmp_path / "TRAIN_FILE.TXT"
    path.write_text("\n".join(SEMEVAL_LINES) + "\n", encoding="utf-8")
    second = read_semeval2010("train", path=path)[1]
    assert second.tokens == ("He", "said", '"', "the", "ship", "left", "the", "port", ".", '"')
    assert (second.head_text, second.tail_text, second.relation) == ("ship", "port", "Entity-Origin(e1,e2)")


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        # the released unlabelled test file: every sentence line followed by the next sentence
        (['8001\t"The <e1>a</e1> b <e2>c</e2>."', '8002\t"The <e1>d</e1> e <e2>f</e2>."'], 2, "TEST_FILE_FULL.TXT"),
        (SEMEVAL_LINES[:1] + SEMEVAL_LINES[2:], 2, "sentence 1 is followed by 'Comment: a comment', not a relation"),
        (SEMEVAL_LINES[:1] + ["", *SEMEVAL_LINES[1:]], 2, "sentence 1 is followed by a blank line"),
        (SEMEVAL_LINES[:9], 10, "sentence 3 is followed by the end of the file"),
        (SEMEVAL_LINES[:2] + ["Note: not a comment"] + SEMEVAL_LINES[3:], 3, "expected a 'Comment:' line or a blank"),
        # files joined with their BOMs: only the one at the very start is dropped
        (SEMEVAL_LINES[:4] + ["\ufeff" + SEMEVAL_LINES[4], *SEMEVAL_LINES[5:]], 5, "expected a sentence line 'ID"),
        (['x1\t"The <e1>a</e1> <e2>b</e2>."', "Other"], 1, "expected a sentence line 'ID<TAB>"),
        (['4\t"no entities here"', "Other"], 1, "expected one <e1>...</e1> and one <e2>...</e2>"),
        (['5\t"<e1>a</e1> <e2>b</e2>"', "Other(e1,e2)"], 2, "not a relation label"),
    ],
)
def test_semeval_refuses_malformed_examples_at_their_line(tmp_path, lines, line, message):
    path = tmp_path / "TEST_FILE.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        read_semeval2010("test", path=path)
    assert str(info.value).startswith(f"{path}:{line}:")


def _semeval_archive(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_semeval_tarball_members(tmp_path):
    from st_contrast.data.relation import SEMEVAL_MEMBERS

    archive = tmp_path / "semeval2010_task8.tar.gz"
    text = ("\r\n".join(SEMEVAL_LINES) + "\r\n").replace("{HUGE}", "much")
    _semeval_archive(archive, {SEMEVAL_MEMBERS["train"]: b"\xef\xbb\xbf" + text.encode()})
    train = read_semeval2010("train", path=archive)
    assert [instance.uid for instance in train] == ["1", "2", "3"]
    with pytest.raises(DataFormatError, match="the archive has no file .*TEST_FILE_FULL.TXT"):
        read_semeval2010("test", path=archive)
    bad = text.encode().replace(b"much", b"m\xffch")
    _semeval_archive(archive, {SEMEVAL_MEMBERS["train"]: bad})
    with pytest.raises(DataFormatError) as info:
        read_semeval2010("train", path=archive)
    assert str(info.value).startswith(f"{archive}!{SEMEVAL_MEMBERS['train']}:1:")
    archive.write_bytes(b"not an archive")
    with pytest.raises(DataFormatError, match="cannot read it as a tar archive"):
        read_semeval2010("train", path=archive)

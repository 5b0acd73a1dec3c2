"""Dataset converters: CLUENER / CoNLL-2003 -> OneKE records for training and evaluation."""

import json
from pathlib import Path

import pytest

from knowlm.cli.main import main
from knowlm.errors import InputError
from knowlm.ie.convert import convert, read_cluener, read_conll
from knowlm.ie.evaluate import documents_from_lines, read_eval_file, score

CLUENER = [
    {
        "text": "浙商银行企业信贷部叶老桂博士则从另一个角度",
        "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}},
    },
    {"text": "生生不息CSOL生化狂潮让你填弹狂扫", "label": {"game": {"CSOL": [[4, 7]]}}},
    {"text": "今天天气很好。", "label": {}},
]
CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
met VBD B-VP O
New NNP B-NP B-LOC
York NNP I-NP I-LOC
Paris NNP I-NP B-LOC
"""


def write_cluener(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_cluener_offsets_become_chinese_typed_entities(tmp_path: Path):
    docs = list(read_cluener(write_cluener(tmp_path / "c.json", CLUENER)))
    assert [(e.type, e.text, e.spans) for e in docs[0].entities] == [
        ("公司", "浙商银行", [(0, 4)]),
        ("人物", "叶老桂", [(9, 12)]),
    ]
    assert docs[0].lang == "zh" and docs[2].entities == []


def test_cluener_bad_offsets_and_types_name_the_line(tmp_path: Path):
    bad = [CLUENER[0], {"text": "生生不息CSOL", "label": {"game": {"CSOL": [[3, 6]]}}}]
    with pytest.raises(InputError, match=r"line 2: game 'CSOL' at \[3, 6\] reads"):
        list(read_cluener(write_cluener(tmp_path / "c.json", bad)))
    with pytest.raises(InputError, match="line 1: unknown CLUENER type 'weapon'"):
        list(read_cluener(write_cluener(tmp_path / "c.json", [{"text": "AK", "label": {"weapon": {}}}])))


def test_conll_reads_iob1_and_iob2_spans(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text(CONLL)
    first, second = read_conll(path)
    assert first.text == "EU rejects German call ."
    assert [(e.type, e.text) for e in first.entities] == [("organization", "EU"), ("miscellaneous", "German")]
    # IOB1: an entity may start with I-; B- splits two adjacent entities of one type
    assert [(e.type, e.text) for e in second.entities] == [
        ("person", "Peter Blackburn"),
        ("location", "New York"),
        ("location", "Paris"),
    ]
    span = second.entities[1].spans[0]
    assert second.text[span[0] : span[1]] == "New York"


def test_conll_rejects_a_bad_tag(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP X-FOO\n")
    with pytest.raises(InputError, match=r"line 2: expected 'token \.\.\. TAG'"):
        list(read_conll(path))


def test_train_records_sample_negatives_and_are_deterministic(tmp_path: Path):
    path = write_cluener(tmp_path / "c.json", CLUENER)
    records, held, stats = convert("cluener", path, negatives=2, seed=3)
    assert held == [] and stats.documents == 3 and stats.entities == 3
    first = next(r for r in records if "浙商银行" in r["instruction"])
    body = json.loads(first["instruction"])
    answer = json.loads(first["output"])
    assert body["input"] == CLUENER[0]["text"] and body["instruction"].startswith("你是")
    assert {"人物", "公司"} <= set(body["schema"]) and len(body["schema"]) == 4  # 2 present + 2 negatives
    assert answer["人物"] == ["叶老桂"] and answer["公司"] == ["浙商银行"]
    assert all(answer[k] == [] for k in body["schema"] if k not in ("人物", "公司"))
    assert convert("cluener", path, negatives=2, seed=3)[0] == records
    assert convert("cluener", path, negatives=2, seed=4)[0] != records


def test_eval_records_ask_the_whole_schema_and_score_perfectly_against_themselves(tmp_path: Path):
    path = write_cluener(tmp_path / "c.json", CLUENER)
    records, _, _ = convert("cluener", path, mode="eval")
    out = tmp_path / "dev.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    first = [r for r in records if r["id"] == records[0]["id"]]
    schema = [item for r in first for item in json.loads(r["instruction"])["schema"]]
    assert len(first) == 2 and len(schema) == 10  # 10 types in batches of 6 + 4, one id
    lines = read_eval_file(out)
    docs = documents_from_lines(lines, {line.number: line.label for line in lines})
    report = score("ner", docs)
    assert report["f1"] == 1.0 and report["gold"] == 3


def test_holdout_is_disjoint_and_limit_samples_the_rest(tmp_path: Path):
    records = [
        {"text": f"第{i}个句子在北京。", "label": {"address": {"北京": [[5 + len(str(i)), 6 + len(str(i))]]}}}
        for i in range(20)
    ]
    path = write_cluener(tmp_path / "c.json", records)
    train, held, stats = convert("cluener", path, holdout=5, limit=8, seed=1)
    train_ids, held_ids = {r["id"] for r in train}, {r["id"] for r in held}
    assert len(held_ids) == 5 and len(train_ids) == 8 and not train_ids & held_ids
    assert stats.documents == 8


def test_conll_valid_has_the_known_entity_count(shared_data: Path):
    records, _, stats = convert("conll2003", shared_data / "conll2003" / "valid.txt", mode="eval")
    # CoNLL-2003's development set: 3,250 sentences with 5,942 entities
    assert stats.documents == 3250 and stats.entities == 5942
    assert stats.by_type == {"organization": 1341, "location": 1837, "miscellaneous": 922, "person": 1842}
    assert len(records) == 3250


def test_every_cluener_offset_in_the_shared_data_checks_out(shared_data: Path):
    docs = list(read_cluener(shared_data / "cluener" / "train.json"))
    assert len(docs) == 10748 and sum(len(d.entities) for d in docs) > 20000


def test_cli_converts_with_holdout_and_rejects_bad_input(tmp_path: Path, capsys):
    path = write_cluener(tmp_path / "c.json", CLUENER)
    out, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    argv = [
        "data",
        "convert-ie",
        "cluener",
        str(path),
        "--out",
        str(out),
        "--holdout",
        "1",
        "--holdout-out",
        str(dev),
    ]
    assert main(argv) == 0
    assert len({json.loads(line)["id"] for line in dev.read_text().splitlines()}) == 1
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["documents"] == 2
    assert main(["data", "convert-ie", "cluener", str(path), "--out", str(out), "--holdout", "1"]) == 2
    assert "--holdout-out" in capsys.readouterr().err
    assert main(["data", "convert-ie", "conll2003", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2

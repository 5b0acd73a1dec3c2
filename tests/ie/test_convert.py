"""Dataset converters: CLUENER / CoNLL-2003 -> OneKE records for training and evaluation."""

import json
import random
import re
from pathlib import Path

import pytest

from knowlm.cli.main import main
from knowlm.errors import InputError
from knowlm.ie.convert import (
    Stats,
    convert,
    dataset_schema,
    joined,
    read_cluener,
    read_conll,
    read_docred,
    read_documents,
    read_duie,
    read_fewrel,
    read_finre,
    read_sanwen,
    read_spert,
    renamed,
    windows,
)
from knowlm.ie.evaluate import documents_from_lines, read_eval_file, score
from knowlm.ie.results import Triple

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
    assert [(e.type, e.text, e.spans) for e in docs[0].items] == [
        ("公司", "浙商银行", [(0, 4)]),
        ("人物", "叶老桂", [(9, 12)]),
    ]
    assert docs[0].lang == "zh" and docs[2].items == []


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
    assert [(e.type, e.text) for e in first.items] == [("organization", "EU"), ("miscellaneous", "German")]
    # IOB1: an entity may start with I-; B- splits two adjacent entities of one type
    assert [(e.type, e.text) for e in second.items] == [
        ("person", "Peter Blackburn"),
        ("location", "New York"),
        ("location", "Paris"),
    ]
    span = second.items[1].spans[0]
    assert second.text[span[0] : span[1]] == "New York"


def test_conll_rejects_a_bad_tag(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP X-FOO\n")
    with pytest.raises(InputError, match=r"line 2: expected 'token \.\.\. TAG'"):
        list(read_conll(path))


def test_train_records_sample_negatives_and_are_deterministic(tmp_path: Path):
    path = write_cluener(tmp_path / "c.json", CLUENER)
    records, held, stats = convert("cluener", path, negatives=2, seed=3)
    assert held == [] and stats.documents == 3 and stats.items == 3
    first = next(r for r in records if "浙商银行" in r["instruction"])
    body = json.loads(first["instruction"])
    answer = json.loads(first["output"])
    assert body["input"] == CLUENER[0]["text"] and body["instruction"].startswith("你是")
    assert {"人物", "公司"} <= set(body["schema"]) and len(body["schema"]) == 4  # 2 present + 2 negatives
    assert answer["人物"] == ["叶老桂"] and answer["公司"] == ["浙商银行"]
    assert all(answer[k] == [] for k in body["schema"] if k not in ("人物", "公司"))
    assert convert("cluener", path, negatives=2, seed=3)[0] == records
    assert convert("cluener", path, negatives=2, seed=4)[0] != records


def test_all_negatives_make_evaluation_like_batches_and_keep_empty_thins_the_empty_ones(tmp_path: Path):
    path = write_cluener(tmp_path / "c.json", CLUENER * 20)

    def empty(record: dict) -> bool:
        return not any(json.loads(record["output"]).values())

    everything, _, _ = convert("cluener", path, negatives=99, seed=0)
    by_id: dict[str, list[dict]] = {}
    for r in everything:
        by_id.setdefault(r["id"], []).append(r)
    assert all(  # every text is asked every type, in batches of 6 + 4, like an evaluation record
        sorted(len(json.loads(r["instruction"])["schema"]) for r in rs) == [4, 6] for rs in by_id.values()
    )
    thinned, _, _ = convert("cluener", path, negatives=99, seed=0, keep_empty=0.25)

    def found(records: list[dict]) -> list[tuple[str, str, str]]:
        return sorted(
            (r["id"], k, v) for r in records for k, vs in json.loads(r["output"]).items() for v in vs
        )

    assert found(thinned) == found(everything)  # only batches with nothing to find are dropped
    kept, total = sum(map(empty, thinned)), sum(map(empty, everything))
    assert total >= 60 and 0.1 * total < kept < 0.45 * total
    assert not any(map(empty, convert("cluener", path, negatives=99, keep_empty=0.0)[0]))
    with pytest.raises(InputError, match="keep_empty"):
        convert("cluener", path, keep_empty=1.5)


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
    assert stats.documents == 3250 and stats.items == 5942
    assert stats.by_type == {"organization": 1341, "location": 1837, "miscellaneous": 922, "person": 1842}
    assert len(records) == 3250


def test_every_cluener_offset_in_the_shared_data_checks_out(shared_data: Path):
    docs = list(read_cluener(shared_data / "cluener" / "train.json"))
    assert len(docs) == 10748 and sum(len(d.items) for d in docs) > 20000


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


# ---- relation datasets ------------------------------------------------------------------------------

SPERT = [
    {
        "tokens": ["John", "Wilkes", "Booth", ",", "who", "assassinated", "President", "Lincoln", "."],
        "entities": [{"type": "Peop", "start": 0, "end": 3}, {"type": "Peop", "start": 6, "end": 8}],
        "relations": [{"type": "Kill", "head": 0, "tail": 1}],
        "orig_id": 5178,
    },
    {
        "tokens": ["IBM", "is", "based", "in", "Armonk", "."],
        "entities": [{"type": "Org", "start": 0, "end": 1}, {"type": "Loc", "start": 4, "end": 5}],
        "relations": [{"type": "OrgBased_In", "head": 0, "tail": 1}],
    },
]


def test_spert_token_offsets_become_character_spans(tmp_path: Path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SPERT))
    first, second = read_spert(path)
    assert first.text == "John Wilkes Booth , who assassinated President Lincoln ."
    assert first.id == "spert-5178" and first.task == "re" and first.lang == "en"
    (triple,) = first.items
    assert isinstance(triple, Triple)
    assert (triple.head, triple.relation, triple.tail) == ("John Wilkes Booth", "Kill", "President Lincoln")
    assert [first.text[s:e] for s, e in triple.head_spans + triple.tail_spans] == [triple.head, triple.tail]
    assert (triple.head_type, triple.tail_type) == ("Peop", "Peop")
    # the same data as JSON lines reads the same; conll04 renames labels into readable names
    lines = tmp_path / "s.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in SPERT))
    assert [d.items for d in read_spert(lines)] == [first.items, second.items]
    records, _, stats = convert("conll04", path, mode="eval")
    assert stats.by_type == {"kill": 1, "organization based in": 1}
    answers = [json.loads(r["output"]) for r in records if r["id"] == "conll04-5178"]
    assert {"head": "John Wilkes Booth", "tail": "President Lincoln"} in [
        t for a in answers for t in a.get("kill", [])
    ]


def test_spert_rejects_bad_indices_naming_the_record(tmp_path: Path):
    bad = [SPERT[0], {**SPERT[1], "relations": [{"type": "Kill", "head": 0, "tail": 5}]}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="record 2: a relation needs"):
        list(read_spert(path))
    path.write_text(json.dumps([{**SPERT[1], "entities": [{"type": "Org", "start": 3, "end": 9}]}]))
    with pytest.raises(InputError, match=r"record 1: entity token span \[3, 9\) outside 6 tokens"):
        list(read_spert(path))


FINRE = """东方航空\t上航\tunknown\t东方航空AH股停牌传将与上航合并
上航\t东方航空\t合并\t东方航空AH股停牌传将与上航合并
东方航空\t上航\t合并\t东方航空AH股停牌传将与上航合并
工行\t美国运通\t被持股\t工行的洋股东美国运通做出承诺
美国运通\t工行\t持股\t工行的洋股东美国运通做出承诺
上海建工\t建工集团\t自己\t上海建工表示建工集团的资产将注入
建工集团\t上海建工\t自己\t上海建工表示建工集团的资产将注入
甲公司\t乙公司\tunknown\t甲公司与乙公司同日公告
南纺股份\t南泰国展\t收购\t南纺股份收购了南泰
南泰国展\t南纺股份\t被收购\t南纺股份收购了南泰
"""


def test_finre_groups_by_sentence_and_keeps_one_direction(tmp_path: Path):
    path = tmp_path / "f.txt"
    path.write_text(FINRE, encoding="utf-8")
    stats = Stats()
    docs = list(read_finre(path, stats))
    assert [d.id for d in docs] == ["finre-1", "finre-4", "finre-6", "finre-8", "finre-9"]
    keys = [[t.key() for t in d.items] for d in docs]
    # symmetric relation: once, in text order; inverse pair: once, active form; 自己 -> 别名
    assert keys[0] == [("东方航空", "合并", "上航")]
    assert keys[1] == [("美国运通", "持股", "工行")]
    assert keys[2] == [("上海建工", "别名", "建工集团")]
    assert keys[3] == []  # unknown: a negative document
    assert keys[4] == [] and stats.skipped == {"name_not_in_sentence": 1}  # 南泰国展 is cut from the text
    triple = docs[1].items[0]
    assert docs[1].text[slice(*triple.head_spans[0])] == "美国运通"  # type: ignore[union-attr]


def test_duie_reads_both_object_forms_and_counts_ungrounded(tmp_path: Path):
    rows = [
        {
            "text": "《喜剧之王》由周星驰主演",
            "spo_list": [
                {
                    "predicate": "主演",
                    "subject": "喜剧之王",
                    "subject_type": "影视作品",
                    "object": {"@value": "周星驰"},
                    "object_type": {"@value": "人物"},
                },
                {"predicate": "导演", "subject": "喜剧之王", "object": "李力持"},
            ],
        },
        {
            "text": "马云创立了阿里巴巴",
            "spo_list": [{"predicate": "创始人", "subject": "阿里巴巴", "object": "马云"}],
        },
    ]
    path = tmp_path / "d.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    stats = Stats()
    first, second = read_duie(path, stats)
    (triple,) = first.items
    assert triple.key() == ("喜剧之王", "主演", "周星驰") and (triple.head_type, triple.tail_type) == (
        "影视作品",
        "人物",
    )
    assert stats.skipped == {"name_not_in_text": 1}
    assert second.items[0].key() == ("阿里巴巴", "创始人", "马云") and second.lang == "zh"
    records, _, _ = convert("duie", path, mode="eval")
    assert {s for r in records for s in json.loads(r["instruction"])["schema"]} == {"主演", "创始人"}
    path.write_text('{"text": "x", "spo_list": [{"subject": "x"}]}\n')
    with pytest.raises(InputError, match="line 1: an spo needs"):
        list(read_duie(path))


def test_finre_and_conll04_shared_data_counts(shared_data: Path):
    _, _, stats = convert("conll04", shared_data / "conll04" / "dev.json", mode="eval")
    assert stats.documents == 231 and stats.items == 331
    docs = list(read_finre(shared_data / "finre" / "valid.txt"))
    relations = {t.relation for d in docs for t in d.items}
    assert (
        not any(r.startswith("被") for r in relations) and "别名" in relations and "unknown" not in relations
    )


def test_detokenize_writes_running_text_and_keeps_offsets(tmp_path: Path):
    from knowlm.ie.convert import join_tokens

    tokens = [
        "Oswald",
        "(",
        "a",
        "former",
        "marine",
        ")",
        "said",
        '"',
        "I",
        "'m",
        "a",
        "patsy",
        '"',
        "in",
        "Dallas",
        ".",
    ]
    text, starts = join_tokens(tokens, detokenize=True)
    assert text == 'Oswald (a former marine) said "I\'m a patsy" in Dallas.'
    assert [text[s : s + len(t)] for s, t in zip(starts, tokens, strict=True)] == tokens
    assert join_tokens(["in", "Dallas", "."])[0] == "in Dallas ."  # the default keeps the tokens apart
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SPERT))
    first = next(read_spert(path, detokenize=True))
    assert first.text == "John Wilkes Booth, who assassinated President Lincoln."
    (triple,) = first.items
    assert [first.text[s:e] for s, e in triple.head_spans + triple.tail_spans] == [
        "John Wilkes Booth",
        "President Lincoln",
    ]
    conll = tmp_path / "c.txt"
    conll.write_text(CONLL)
    assert next(read_conll(conll, detokenize=True)).text == "EU rejects German call."
    with pytest.raises(InputError, match="--detokenize applies to token formats"):
        convert("cluener", write_cluener(tmp_path / "c.json", CLUENER), detokenize=True)


def test_running_text_leaves_the_sentence_full_stop_out_of_a_name(tmp_path: Path):
    """CoNLL04 glues a sentence's full stop to its last word ("Boise."): in running text the name is
    "Boise", also where another sentence follows in the record; an abbreviation keeps its own period
    ("Tenn.", "N.M.")."""
    records = [
        {
            "tokens": ["Fred", "Demler", "lives", "near", "Boise."],
            "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Loc", "start": 4, "end": 5}],
            "relations": [{"type": "Live_In", "head": 0, "tail": 1}],
        },
        {
            "tokens": ["Phil", "Fuhrer", "leads", "Gannett.", "It", "grows", "."],
            "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Org", "start": 3, "end": 4}],
            "relations": [{"type": "Work_For", "head": 0, "tail": 1}],
        },
        {
            "tokens": ["He", "works", "in", "Nashville", ",", "Tenn."],
            "entities": [{"type": "Loc", "start": 3, "end": 4}, {"type": "Loc", "start": 5, "end": 6}],
            "relations": [{"type": "Located_In", "head": 0, "tail": 1}],
        },
        {
            "tokens": ["She", "moved", "to", "Belen", ",", "N.M."],
            "entities": [{"type": "Loc", "start": 3, "end": 4}, {"type": "Loc", "start": 5, "end": 6}],
            "relations": [{"type": "Located_In", "head": 0, "tail": 1}],
        },
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(records))
    docs = list(read_spert(path, detokenize=True))
    assert [d.items[0].key() for d in docs] == [
        ("Fred Demler", "Live_In", "Boise"),
        ("Phil Fuhrer", "Work_For", "Gannett"),  # a sentence that ends inside the record
        ("Nashville", "Located_In", "Tenn."),
        ("Belen", "Located_In", "N.M."),
    ]
    (boise,) = docs[0].items
    assert docs[0].text == "Fred Demler lives near Boise." and boise.tail_spans == [(23, 28)]
    assert next(read_spert(path)).items[0].tail == "Boise."  # the tokens as given, without --detokenize


def test_a_hub_dataset_file_is_read_from_the_hub_cache_and_offline_failures_explain(
    tmp_path: Path, monkeypatch
):
    from huggingface_hub import constants

    from knowlm.models.resolve import dataset_file

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read when a download starts
    with pytest.raises(InputError, match="hf://datasets/OWNER/NAME"):
        dataset_file("hf://models/x")
    with pytest.raises(InputError, match=re.escape("could not download hf://datasets/org/set/train.json")):
        dataset_file("hf://datasets/org/set/train.json")  # tests are offline (HF_HUB_OFFLINE=1)
    # a file already in the Hub cache is used without the network
    snapshot = tmp_path / "hub" / "datasets--org--set" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "train.json").write_text(json.dumps(CLUENER[0], ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "hub" / "datasets--org--set" / "refs").mkdir()
    (tmp_path / "hub" / "datasets--org--set" / "refs" / "main").write_text("a" * 40)
    assert dataset_file("hf://datasets/org/set/train.json").read_text(encoding="utf-8").startswith('{"text"')
    assert dataset_file("local/file.json") == Path("local/file.json")


def test_rename_gives_types_and_relations_the_names_a_schema_will_use(tmp_path: Path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SPERT))
    records, _, stats = convert(
        "conll04", path, mode="eval", rename={"organization based in": "headquartered in"}
    )
    assert stats.by_type == {"kill": 1, "headquartered in": 1}
    schema = json.loads(records[0]["instruction"])["schema"]
    assert "headquartered in" in schema and "organization based in" not in schema
    answers = [json.loads(r["output"]) for r in records if r["id"] == "conll04-2"]
    assert {"head": "IBM", "tail": "Armonk"} in [t for a in answers for t in a.get("headquartered in", [])]
    # NER types too (CLUENER's Chinese names), and through the CLI
    cluener = write_cluener(tmp_path / "c.json", CLUENER)
    out = tmp_path / "out.jsonl"
    assert main(["data", "convert-ie", "cluener", str(cluener), "--out", str(out), "--mode", "eval",
                 "--rename", "人物=人名, 公司=企业"]) == 0  # fmt: skip
    lines = out.read_text(encoding="utf-8").splitlines()
    answers = [json.loads(json.loads(line)["output"]) for line in lines]
    found = {k: v for a in answers for k, v in a.items() if v}
    assert found == {"人名": ["叶老桂"], "企业": ["浙商银行"], "游戏": ["CSOL"]}
    assert "人物" not in "".join(lines)
    # a name the dataset does not have, two names made one, a malformed pair: errors naming them
    with pytest.raises(InputError, match="founder not in the dataset's types"):
        convert("conll04", path, rename={"founder": "x"})
    with pytest.raises(InputError, match="kill=located in gives a type the name of another"):
        convert("conll04", path, rename={"kill": "located in"})
    assert main(["data", "convert-ie", "cluener", str(cluener), "--out", str(out), "--rename", "人物"]) == 2
    assert "'人物' is not OLD=NEW" in capsys.readouterr().err


def test_rename_merges_types_into_a_coarser_schema(tmp_path: Path):
    # one mention under two of the merged types (labelled twice): once in the merged answer
    twice = {
        "text": "商务部和商务部",
        "label": {"government": {"商务部": [[0, 2]]}, "organization": {"商务部": [[4, 6]]}},
    }
    cluener = write_cluener(tmp_path / "c.json", [*CLUENER, twice])
    coarse = {"公司": "组织机构", "政府机构": "组织机构", "组织机构": "组织机构", "人物": "人名"}
    records, _, stats = convert("cluener", cluener, mode="eval", rename=coarse)
    schema = json.loads(records[0]["instruction"])["schema"]
    assert schema.count("组织机构") == 1 and "公司" not in schema and "政府机构" not in schema
    answers = {r["instruction"]: json.loads(r["output"]) for r in records}
    found = [(k, v) for a in answers.values() for k, v in a.items() if v]
    assert found == [
        ("人名", ["叶老桂"]),
        ("组织机构", ["浙商银行"]),
        ("游戏", ["CSOL"]),
        ("组织机构", ["商务部"]),
    ]
    assert stats.by_type["组织机构"] == 2
    docs = list(read_documents("cluener", cluener, Stats(), False))
    _, merged = renamed(dataset_schema("cluener", docs), docs, coarse)
    assert [(e.type, e.text, e.spans) for e in merged[-1].items] == [("组织机构", "商务部", [(0, 3), (4, 7)])]


def test_join_makes_two_text_records_that_fill_several_relations(tmp_path: Path, capsys):
    spert = [*SPERT, {**SPERT[1], "tokens": ["Sony", "is", "based", "in", "Tokyo", "."]}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spert))
    docs = list(read_documents("conll04", path, Stats(), True))
    out = joined(docs, 1.0, random.Random(0))
    assert [d.id for d in docs] == [d.id.split("+")[0] for d in out]
    for doc in out:  # every span of both texts still points at its mention
        assert all(doc.text[s:e] == t.head for t in doc.items for s, e in t.head_spans)
        assert all(doc.text[s:e] == t.tail for t in doc.items for s, e in t.tail_spans)
    # a partner holds another relation: the kill sentence joins one of the two based-in sentences, and a
    # based-in sentence can only join the kill one
    assert out[0].text.startswith("John Wilkes Booth, who") and " is based in " in out[0].text
    assert {t.relation for t in out[0].items} == {"kill", "organization based in"}
    assert all(d.id.endswith("+conll04-5178") for d in out[1:])
    assert joined(docs, 0.0, random.Random(0)) == docs
    # through the CLI: one training record answers two relations; eval mode refuses to join
    records, _, _ = convert("conll04", path, negatives=99, join=1.0, detokenize=True)
    filled = [sum(1 for v in json.loads(r["output"]).values() if v) for r in records]
    assert max(filled) == 2
    with pytest.raises(InputError, match="only in train mode"):
        convert("conll04", path, mode="eval", join=0.5)
    out_file = tmp_path / "j.jsonl"
    assert main(["data", "convert-ie", "conll04", str(path), "--out", str(out_file), "--join", "2"]) == 2
    assert "join must be between 0 and 1" in capsys.readouterr().err and not out_file.exists()


# ---- SanWen, DocRED, FewRel -------------------------------------------------------------------------

SANWEN = "".join(
    f"{h}\t{t}\t{r}\t{s}\n"
    for h, t, r, s in [
        ("幽兰", "山谷", "Located", "幽兰在山谷，本自无人识。"),
        ("奶奶", "母亲", "Family", "母亲<N>岁时，奶奶也去世了。"),
        ("母亲", "岁时", "unknown", "母亲<N>岁时，奶奶也去世了。"),
        ("树叶", "树", "Part-Whole", "风吹过，树上的树叶沙沙作响。"),
    ]
)


def test_sanwen_names_relations_in_chinese_and_keeps_direction(tmp_path: Path):
    path = tmp_path / "s.txt"
    path.write_text(SANWEN, encoding="utf-8")
    docs = list(read_sanwen(path))
    assert [d.id for d in docs] == ["sanwen-1", "sanwen-2", "sanwen-4"]
    assert [[t.key() for t in d.items] for d in docs] == [
        [("幽兰", "位于", "山谷")],
        [("母亲", "亲属", "奶奶")],  # symmetric: text order; the unknown pair adds nothing
        [("树叶", "部分", "树")],  # directed: as given, though the tail comes first in the text
    ]
    schema = dataset_schema("sanwen", docs)
    assert len(schema.items) == 9 and "位于" in schema.names
    path.write_text("甲\t乙\tFriend\t甲和乙。\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1: unknown SanWen relation 'Friend'"):
        list(read_sanwen(path))


DOCRED = [
    {
        "title": "Apple",
        "sents": [
            ["Apple", "Inc.", "(", "Apple", ")", "was", "founded", "by", "Steve", "Jobs", "."],
            ["It", "is", "based", "in", "Cupertino", ",", "California", "."],
            ["Jobs", "died", "in", "2011", "."],
        ],
        "vertexSet": [
            [{"name": "Apple Inc.", "sent_id": 0, "pos": [0, 2], "type": "ORG"},
             {"name": "Apple", "sent_id": 0, "pos": [3, 4], "type": "ORG"}],
            [{"name": "Steve Jobs", "sent_id": 0, "pos": [8, 10], "type": "PER"},
             {"name": "Jobs", "sent_id": 2, "pos": [0, 1], "type": "PER"}],
            [{"name": "Cupertino", "sent_id": 1, "pos": [4, 5], "type": "LOC"}],
            [{"name": "2011", "sent_id": 2, "pos": [3, 4], "type": "TIME"}],
        ],
        "labels": [
            {"h": 0, "t": 1, "r": "P112", "evidence": [0]},
            {"h": 0, "t": 2, "r": "P159", "evidence": [1]},
            {"h": 1, "t": 3, "r": "P570", "evidence": [2]},
        ],
    }
]  # fmt: skip
REL_INFO = {"P112": "founded by", "P159": "headquarters location", "P570": "date of death", "P17": "country"}


def write_docred(tmp_path: Path, data: list | None = None) -> Path:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data or DOCRED), encoding="utf-8")
    (tmp_path / "rel_info.json").write_text(json.dumps(REL_INFO), encoding="utf-8")
    return path


def test_docred_gives_running_text_every_mention_and_other_names(tmp_path: Path):
    (doc,) = read_docred(write_docred(tmp_path))
    assert doc.text == (
        "Apple Inc. (Apple) was founded by Steve Jobs. It is based in Cupertino, California. Jobs died in 2011."
    )
    assert [t.key() for t in doc.items] == [
        ("Apple Inc.", "founded by", "Steve Jobs"),
        ("Apple Inc.", "headquarters location", "Cupertino"),
        ("Steve Jobs", "date of death", "2011"),
    ]
    founder = doc.items[0]
    assert [doc.text[s:e] for s, e in founder.head_spans] == ["Apple Inc.", "Apple"]  # type: ignore[union-attr]
    assert [doc.text[s:e] for s, e in founder.tail_spans] == ["Steve Jobs", "Jobs"]  # type: ignore[union-attr]
    assert (founder.head_type, founder.tail_type) == ("organization", "person")  # type: ignore[union-attr]
    assert doc.names == {"Apple": "Apple Inc.", "Jobs": "Steve Jobs"}
    # every relation label is in the schema, in rel_info's order, found in a document or not
    assert dataset_schema("docred", [doc], tmp_path / "dev.json").names == list(REL_INFO.values())


def test_docred_errors_name_the_document_and_the_missing_labels(tmp_path: Path):
    bad = [{**DOCRED[0], "labels": [{"h": 0, "t": 9, "r": "P112"}]}]
    with pytest.raises(
        InputError, match=r"document 1: a label needs 'h' and 't' indices into its 4 entities"
    ):
        list(read_docred(write_docred(tmp_path, bad)))
    bad = [{**DOCRED[0], "labels": [{"h": 0, "t": 1, "r": "P999"}]}]
    with pytest.raises(InputError, match=r"relation 'P999' is not in .*rel_info.json"):
        list(read_docred(write_docred(tmp_path, bad)))
    (tmp_path / "rel_info.json").unlink()
    with pytest.raises(InputError, match=r"rel_info.json: no such file .*keep it next to dev.json"):
        list(read_docred(tmp_path / "dev.json"))


def test_docred_eval_records_score_any_name_of_an_entity(tmp_path: Path):
    path = write_docred(tmp_path)
    _, held, _ = convert("docred", path, holdout=1)
    assert held and all(r["names"] == {"Apple": "Apple Inc.", "Jobs": "Steve Jobs"} for r in held)
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in held), encoding="utf-8")
    lines = read_eval_file(eval_file)
    answers = {}
    for line in lines:  # the model names the company by its short name, and the founder by his surname
        schema = json.loads(line.instruction)["schema"]
        found = {
            "founded by": [{"head": "Apple", "tail": "Jobs"}],
            "headquarters location": [{"head": "Apple", "tail": "Cupertino"}],
        }
        answers[line.number] = json.dumps({name: found.get(name, []) for name in schema})
    report = score("re", documents_from_lines(lines, answers))
    assert (report["tp"], report["predicted"], report["gold"]) == (2, 2, 3)


def test_windows_keep_the_items_each_piece_names(tmp_path: Path):
    (doc,) = read_docred(write_docred(tmp_path))
    stats = Stats()
    pieces = windows(doc, 50, stats)
    assert [p.text for p in pieces] == [
        "Apple Inc. (Apple) was founded by Steve Jobs.",
        "It is based in Cupertino, California.",
        "Jobs died in 2011.",
    ]
    assert [[t.key() for t in p.items] for p in pieces] == [
        [("Apple Inc.", "founded by", "Steve Jobs")],
        [],  # "It": the company is not named in this piece
        [("Jobs", "date of death", "2011")],  # named as the piece names him
    ]
    assert stats.skipped == {"across_windows": 1}
    for piece in pieces:
        for t in piece.items:
            assert all(piece.text[s:e] == t.head for s, e in t.head_spans[:1])  # type: ignore[union-attr]
    assert windows(doc, 1000) == [doc]
    with pytest.raises(InputError, match="only in train mode"):
        convert("docred", tmp_path / "dev.json", mode="eval", window=100)


def test_exclude_and_only_hold_out_whole_relation_types(tmp_path: Path, capsys):
    path = write_docred(tmp_path)
    seen, _, _ = convert("docred", path, negatives=99, exclude=["founded by"])
    assert all("founded by" not in json.loads(r["instruction"])["schema"] for r in seen)
    assert "Steve Jobs" not in "".join(r["output"] for r in seen if "date of death" not in r["output"])
    unseen, _, _ = convert("docred", path, negatives=99, only=["founded by"])
    assert [json.loads(r["instruction"])["schema"] for r in unseen] == [["founded by"]]
    with pytest.raises(InputError, match="founder: not among the dataset's types"):
        convert("docred", path, exclude=["founder"])
    out = tmp_path / "o.jsonl"
    argv = ["data", "convert-ie", "docred", str(path), "--out", str(out)]
    assert main([*argv, "--exclude-types", "founded by", "--only-types", "country"]) == 2
    assert "not both" in capsys.readouterr().err and not out.exists()


def test_text_first_puts_the_input_before_the_schema_in_a_share_of_records(tmp_path: Path):
    path = write_docred(tmp_path)
    records, _, _ = convert("docred", path, negatives=99, text_first=1.0)
    assert records and all(
        list(json.loads(r["instruction"])) == ["instruction", "input", "schema"] for r in records
    )
    plain, _, _ = convert("docred", path, negatives=99)
    assert all(list(json.loads(r["instruction"])) == ["instruction", "schema", "input"] for r in plain)
    assert [r["output"] for r in records] == [r["output"] for r in plain]


def test_schema_batch_size_asks_one_relation_a_training_record(tmp_path: Path):
    path = write_docred(tmp_path)
    records, _, _ = convert("docred", path, negatives=99, schema_batch_size=1)
    batched, _, _ = convert("docred", path, negatives=99)
    assert all(len(json.loads(r["instruction"])["schema"]) == 1 for r in records)
    assert len(records) > len(batched)
    answers = [json.loads(r["output"]) for r in records]
    assert all(len(a) == 1 for a in answers) and any(v for a in answers for v in a.values())
    with pytest.raises(InputError, match="schema_batch_size"):
        convert("docred", path, mode="eval", schema_batch_size=1)


FEWREL = {
    "P26": [
        {"tokens": ["Marie", "Curie", "married", "Pierre", "Curie", "in", "1895", "."],
         "h": ["marie curie", "Q7186", [[0, 1]]], "t": ["pierre curie", "Q37463", [[3, 4]]]},
    ],
    "P40": [
        {"tokens": ["Irène", "was", "the", "daughter", "of", "Marie", "Curie", "."],
         "h": ["marie curie", "Q7186", [[5, 6]]], "t": ["irène", "Q7504", [[0]]]},
    ],
}  # fmt: skip


def test_fewrel_asks_each_sentence_only_for_its_annotated_relation(tmp_path: Path):
    path = tmp_path / "val_wiki.json"
    path.write_text(json.dumps(FEWREL), encoding="utf-8")
    (tmp_path / "pid2name.json").write_text(
        json.dumps({"P26": ["spouse", "the subject has the object as their spouse"], "P40": ["child", "..."]})
    )
    docs = list(read_fewrel(path))
    assert [(d.id, [t.key() for t in d.items]) for d in docs] == [
        ("fewrel-P26-1", [("Marie Curie", "spouse", "Pierre Curie")]),
        ("fewrel-P40-1", [("Marie Curie", "child", "Irène")]),
    ]
    records, _, _ = convert("fewrel", path, negatives=5)
    # the sentence's other pairs are not annotated, so no other relation is asked (and answered empty)
    assert [json.loads(r["instruction"])["schema"] for r in records] == [["spouse"], ["child"]]
    bad = {"P26": [{**FEWREL["P26"][0], "t": ["x", "Q1", [[12]]]}]}
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(InputError, match="P26 sentence 1: a token index outside its 8 tokens"):
        list(read_fewrel(path))


def test_docred_sanwen_and_fewrel_shared_data_counts(shared_data: Path):
    docs = list(read_docred(shared_data / "redocred" / "dev.json"))
    assert len(docs) == 500 and sum(len(d.items) for d in docs) > 17_000
    # every span of a triple reads one of its entity's names, but for the few names two entities share
    # (Sacramento, the city, and The Sacramento Bee), which map to neither
    spans = [
        (doc.names.get(doc.text[s:e], doc.text[s:e]) == name, doc.text[s:e] in doc.names)
        for doc in docs
        for t in doc.items
        for name, spans in ((t.head, t.head_spans), (t.tail, t.tail_spans))  # type: ignore[union-attr]
        for s, e in spans
    ]
    assert sum(ok for ok, _ in spans) / len(spans) > 0.99
    assert not any(aliased and not ok for ok, aliased in spans)
    assert len(dataset_schema("docred", docs, shared_data / "redocred" / "dev.json").items) == 96
    sanwen = list(read_sanwen(shared_data / "sanwen" / "valid.txt"))
    assert sum(len(d.items) for d in sanwen) > 1200
    fewrel = list(read_fewrel(shared_data / "fewrel" / "val_wiki.json"))
    assert len(fewrel) == 16 * 700


def test_descriptions_go_into_the_instructions_that_ask_for_the_item(tmp_path: Path, capsys):
    path = write_docred(tmp_path)
    wikidata = tmp_path / "pid2name.json"  # FewRel's table: a catalogue of far more relations
    wikidata.write_text(
        json.dumps({"P112": ["founded by", "founder of this organization"], "P1": ["x", "y"]})
    )
    out = tmp_path / "o.jsonl"
    argv = ["data", "convert-ie", "docred", str(path), "--mode", "eval", "--out", str(out)]
    assert main([*argv, "--descriptions", str(wikidata)]) == 0
    instructions = [json.loads(json.loads(line)["instruction"]) for line in out.read_text().splitlines()]
    for body in instructions:
        described = "founded by: founder of this organization" in body["instruction"]
        assert described == ("founded by" in body["schema"])
    assert any("founded by" in body["schema"] for body in instructions)
    plain = tmp_path / "mine.json"
    plain.write_text(json.dumps({"founder": "who founded it"}))
    assert main([*argv, "--descriptions", str(plain)]) == 2  # names none of the dataset's relations
    assert "the descriptions name none of the dataset's types" in capsys.readouterr().err
    plain.write_text(json.dumps({"founded by": 3}))
    assert main([*argv, "--descriptions", str(plain)]) == 2
    assert "'founded by' must map to a text" in capsys.readouterr().err


def test_descriptions_are_refused_for_oneke_records(tmp_path: Path):
    path = tmp_path / "oneke.jsonl"
    path.write_text(json.dumps({"instruction": "{}", "output": "{}"}) + "\n")
    with pytest.raises(InputError, match="descriptions do not apply to oneke records"):
        convert("oneke", path, descriptions={"founder": "who founded it"})

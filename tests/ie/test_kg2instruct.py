import json
import random

import pytest

from knowlm.errors import InputError
from knowlm.ie.augment import make_records
from knowlm.ie.kg2instruct import KGTriple, kg2instruct, read_aliases, read_triples
from knowlm.ie.results import Entity
from knowlm.ie.tasks import parse_schema

KG = [
    KGTriple("马云", "创始人", "阿里巴巴", "人物", "组织"),
    KGTriple("阿里巴巴", "总部", "杭州", "组织", "地点"),
    KGTriple("Steve Jobs", "founder", "Apple", "person", "organization"),
    KGTriple("马化腾", "创始人", "腾讯", "人物", "组织"),
]
CORPUS = [
    "马云在杭州创立了阿里。阿里的总部位于杭州。马云喜欢太极。",
    "Jobs founded Apple in 1976. A pineapple is not an Apple product? Applesauce is food.",
]
ALIASES = {"阿里巴巴": ["阿里"], "Steve Jobs": ["Jobs"]}


def parsed(records):
    return [
        (
            json.loads(r["instruction"])["input"],
            json.loads(r["instruction"])["schema"],
            json.loads(r["output"]),
        )
        for r in records
    ]


def test_exact_records_with_aliases_and_no_match_cases():
    records, stats = kg2instruct(KG, iter(CORPUS), aliases=ALIASES, tasks=("re",), negatives=0, seed=1)
    assert parsed(records) == [
        (
            "马云在杭州创立了阿里。",
            ["总部", "创始人"],
            {"总部": [{"head": "阿里", "tail": "杭州"}], "创始人": [{"head": "马云", "tail": "阿里"}]},
        ),  # order: seed 1
        ("阿里的总部位于杭州。", ["总部"], {"总部": [{"head": "阿里", "tail": "杭州"}]}),
        ("Jobs founded Apple in 1976.", ["founder"], {"founder": [{"head": "Jobs", "tail": "Apple"}]}),
    ]
    # "马云喜欢太极" mentions one entity only; "pineapple"/"Applesauce" are not whole-word matches of Apple
    assert stats.sentences == 6 and stats.matched_sentences == 3
    assert stats.matched_triples == {"总部": 2, "创始人": 1, "founder": 1}
    assert json.loads(records[2]["instruction"])["instruction"].startswith(
        "You are an expert"
    )  # English text
    assert records[0]["task"] == "RE" and records[0]["source"] == "kg2instruct"


def test_without_aliases_nothing_matches_the_alias_sentences():
    records, stats = kg2instruct(KG, iter(CORPUS), tasks=("re",), negatives=0)
    assert records == [] and stats.matched_sentences == 0


def test_filters_and_determinism():
    records, stats = kg2instruct(KG, iter(CORPUS), aliases=ALIASES, tasks=("re",), negatives=0, min_support=2)
    assert stats.dropped_relations == ["founder", "创始人"]
    assert all(set(p[2]) == {"总部"} for p in parsed(records))
    _, stats = kg2instruct(KG, iter(CORPUS), aliases=ALIASES, tasks=("re",), max_sentence_len=10)
    assert stats.too_long >= 2
    only, _ = kg2instruct(
        KG, iter(CORPUS), aliases=ALIASES, tasks=("re",), relations={"founder"}, negatives=0
    )
    assert [p[1] for p in parsed(only)] == [["founder"]]
    a, _ = kg2instruct(KG, iter(CORPUS), aliases=ALIASES, tasks=("re", "ner", "spo"), seed=7)
    b, _ = kg2instruct(KG, iter(CORPUS), aliases=ALIASES, tasks=("re", "ner", "spo"), seed=7)
    assert a == b and {r["task"] for r in a} == {"RE", "NER", "SPO"}


def test_ner_and_spo_records():
    records, _ = kg2instruct(KG[2:3], iter(CORPUS[1:]), aliases=ALIASES, tasks=("ner", "spo"), negatives=0)
    assert parsed(records) == [
        (
            "Jobs founded Apple in 1976.",
            ["person", "organization"],
            {"person": ["Jobs"], "organization": ["Apple"]},
        ),
        (
            "Jobs founded Apple in 1976.",
            [{"subject_type": "person", "predicate": "founder", "object_type": "organization"}],
            {"founder": [{"subject": "Jobs", "object": "Apple"}]},
        ),
    ]


def test_negative_schema_items_are_answered_empty():
    schema = parse_schema("ner", "人物,地点,组织,时间,作品")
    records = make_records(
        "马云在杭州。",
        [Entity("人物", "马云"), Entity("地点", "杭州")],
        schema,
        lang="zh",
        rng=random.Random(3),
        negatives=2,
        batch_size=10,
    )
    ((_text, names, answer),) = parsed(records)
    assert {"人物", "地点"} <= set(names) and len(names) == 4
    assert answer["人物"] == ["马云"] and answer["地点"] == ["杭州"]
    assert all(answer[n] == [] for n in names if n not in ("人物", "地点"))


def test_reading_kg_files(tmp_path):
    tsv = tmp_path / "kg.tsv"
    tsv.write_text("head\trelation\ttail\n马云\t创始人\t阿里巴巴\t人物\t组织\n\nA\tr\tB\n")
    assert read_triples(tsv) == [
        KGTriple("马云", "创始人", "阿里巴巴", "人物", "组织"),
        KGTriple("A", "r", "B"),
    ]
    jsonl = tmp_path / "kg.jsonl"
    jsonl.write_text('{"head": "A", "relation": "r", "tail": "B"}\n{"head": "A", "tail": "B"}\n')
    with pytest.raises(InputError, match="line 2: needs non-empty 'head', 'relation' and 'tail'"):
        read_triples(jsonl)
    bad = tmp_path / "bad.tsv"
    bad.write_text("A\tr\n")
    with pytest.raises(InputError, match="line 1: expected head, relation, tail"):
        read_triples(bad)
    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("阿里巴巴\t阿里|Alibaba\n")
    assert read_aliases(aliases) == {"阿里巴巴": ["阿里", "Alibaba"]}


def test_cli(tmp_path, capsys):
    from knowlm.cli.main import main

    kg = tmp_path / "kg.tsv"
    kg.write_text("".join(f"{t.head}\t{t.relation}\t{t.tail}\t{t.head_type}\t{t.tail_type}\n" for t in KG))
    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("阿里巴巴\t阿里\nSteve Jobs\tJobs\n")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "kg2instruct",
            "--kg",
            str(kg),
            "--aliases",
            str(aliases),
            "--corpus",
            str(corpus),
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "3 of 6 sentences matched" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 3
    assert json.loads((tmp_path / "out.jsonl.stats.json").read_text())["matched_sentences"] == 3
    assert (
        main(["kg2instruct", "--kg", str(kg), "--corpus", str(corpus), "--out", str(out), "--tasks", "ee"])
        == 2
    )

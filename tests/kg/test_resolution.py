"""Entity resolution in the graph store: merges kept as data and explained, undone exactly, idempotent and
incremental; one IRI scheme with `extract --format nt`; graph-level scores against DocRED-format gold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyoxigraph", reason="pip install 'knowlm[kg]'")

from knowlm.cli.main import main
from knowlm.errors import InputError
from knowlm.ie.export import export
from knowlm.kg.export import export_graph
from knowlm.kg.store import GraphStore

DOCS = {
    "d1": "The United States Geological Survey (USGS) maps rivers. USGS is based in Reston.",
    "d2": "Bernard Vann won the Victoria Cross. Vann was born in Rushden.",
    "d3": "阿里巴巴集团总部位于杭州。",
    "d4": "阿里巴巴由马云创立。",
    "d5": "USGS ordered maps from Esri.",
    "d6": "Apple was founded by Steve Jobs.",
    "d7": "Apple opened a shop in Bern.",
}


def span(text: str, name: str) -> list[list[int]]:
    start = text.find(name)
    assert start >= 0, name
    return [[start, start + len(name)]]


def rel(doc: str, head: str, relation: str, tail: str, confidence: float = 0.9, at: int = 0) -> dict:
    text = DOCS[doc]
    h = text.find(head, at)
    return {
        "head": head,
        "relation": relation,
        "tail": tail,
        "head_spans": [[h, h + len(head)]],
        "tail_spans": span(text, tail),
        "grounded": True,
        "confidence": confidence,
    }


def ent(doc: str, name: str, type_: str) -> dict:
    return {"type": type_, "text": name, "spans": span(DOCS[doc], name), "grounded": True, "confidence": 0.95}


RESULTS = {
    "d1": [
        ent("d1", "United States Geological Survey", "organization"),
        rel("d1", "United States Geological Survey", "maps", "rivers"),
        rel("d1", "USGS", "based in", "Reston", at=50),
    ],
    "d2": [
        ent("d2", "Bernard Vann", "person"),
        rel("d2", "Bernard Vann", "award received", "Victoria Cross"),
        rel("d2", "Vann", "place of birth", "Rushden", at=30),
    ],
    "d3": [rel("d3", "阿里巴巴集团", "总部", "杭州")],
    "d4": [rel("d4", "阿里巴巴", "创始人", "马云", confidence=0.4)],
    "d5": [rel("d5", "USGS", "customer of", "Esri")],
    "d6": [ent("d6", "Apple", "organization"), rel("d6", "Apple", "founded by", "Steve Jobs")],
    "d7": [rel("d7", "Apple", "located in", "Bern", confidence=0.3)],
}


def write(path: Path, ids: list[str]) -> Path:
    lines = [
        json.dumps({"id": i, "text": DOCS[i], "task": "re", "results": RESULTS[i]}, ensure_ascii=False) + "\n"
        for i in ids
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write(tmp_path / "all.jsonl", list(DOCS))


def graph(store: GraphStore) -> list[str]:
    """The derived graph (the default graph: what queries and exports see), sorted."""
    return sorted(str(q) for q in store.store.quads_for_pattern(None, None, None, store.ox.DefaultGraph()))


def test_resolution_merges_one_entitys_names_and_queries_see_it(tmp_path: Path, corpus: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([corpus])
    exact = store.stats()["entities"]
    assert len(store.neighbourhood("USGS")) == 2  # exact names: the acronym's own statements only
    merges = store.resolve()
    assert merges >= 4 and store.stats()["entities"] < exact
    usgs = {(r["head"], r["relation"], r["tail"]) for r in store.neighbourhood("USGS")}
    assert usgs == {
        ("United States Geological Survey", "maps", "rivers"),
        ("United States Geological Survey", "based in", "Reston"),
        ("United States Geological Survey", "customer of", "Esri"),
    }
    assert {r["relation"] for r in store.neighbourhood("阿里巴巴集团")} == {"总部", "创始人"}
    # "Vann" is Bernard Vann in d2 only; the untyped "Apple" of relations joined the organization
    assert {r["relation"] for r in store.neighbourhood("Bernard Vann")} == {
        "award received",
        "place of birth",
    }
    assert len(store.entities("Apple")) == 1
    # the raw mentions stay as they were
    assert len(store.mentions()) == 12


def test_explain_shows_each_merge_with_rule_evidence_and_id(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kg = str(tmp_path / "kg")
    assert main(["kg", "build", str(corpus), "--store", kg, "--resolve"]) == 0
    assert "merges" in capsys.readouterr().err
    assert main(["kg", "explain", "--store", kg, "usgs", "--json"]) == 0
    [entity] = json.loads(capsys.readouterr().out)
    assert entity["label"] == "United States Geological Survey" and entity["type"] == "organization"
    assert entity["names"] == ["united states geological survey", "usgs"]
    [merge] = [m for m in entity["merges"] if m["rule"] == "acronym"]
    assert merge["left"] == {"name": "usgs", "type": ""} and merge["status"] == "applied"
    assert merge["score"] == 0.9 and len(merge["id"]) == 20 and merge["evidence"]
    assert main(["kg", "explain", "--store", kg, "Vann"]) == 0
    text = capsys.readouterr().out
    assert "in document" in text and "'vann' -> 'bernard vann' (person)" in text
    assert main(["kg", "explain", "--store", kg, "nobody"]) == 1


def test_split_restores_the_graph_before_that_merge_exactly(tmp_path: Path, corpus: Path) -> None:
    never = GraphStore(tmp_path / "never")
    never.load([corpus])
    store = GraphStore(tmp_path / "kg")
    store.load([corpus], resolve=True)
    resolved = graph(store)
    all_ids = [m["id"] for e in store.explain("USGS") for m in e["merges"]]
    assert store.split(all_ids) >= 1
    assert len(store.neighbourhood("USGS")) == 2 and store.rejected() == sorted(set(all_ids))
    assert store.resolve() == store.split([], restore=True)  # resolving again does not redo an undone merge
    assert len(store.neighbourhood("USGS")) == 2
    explained = [m for e in store.explain("USGS") for m in e["merges"]]
    assert explained and all(m["status"] == "rejected" for m in explained)
    store.split(all_ids, restore=True)
    assert graph(store) == resolved
    with pytest.raises(InputError, match="no merge of this graph with id ffff"):
        store.split(["ffff"])
    store.unresolve()
    assert graph(store) == graph(never)


def test_resolving_twice_and_incrementally_gives_the_batch_graph(tmp_path: Path) -> None:
    first, second = (
        write(tmp_path / "a.jsonl", ["d5", "d4", "d7"]),
        write(tmp_path / "b.jsonl", ["d1", "d2", "d3", "d6"]),
    )
    batch = GraphStore(tmp_path / "batch")
    batch.load([first, second], resolve=True)
    once = graph(batch)
    assert batch.resolve() == batch.resolve() and graph(batch) == once
    step = GraphStore(tmp_path / "step")
    step.load([first], resolve=True)  # "USGS" alone: no long name to join yet
    assert step.explain("USGS")[0]["merges"] == []
    step.load([second])  # a resolved store resolves what is added against what is there
    assert graph(step) == once and len(step.neighbourhood("USGS")) == 3


def test_statements_carry_confidence_and_queries_exports_filter_on_it(tmp_path: Path, corpus: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([corpus], resolve=True)
    rows = store.neighbourhood("阿里巴巴")
    assert {r["relation"]: r["confidence"] for r in rows} == {"总部": 0.9, "创始人": 0.4}
    assert [r["relation"] for r in store.neighbourhood("阿里巴巴", min_confidence=0.5)] == ["总部"]
    _, stated = store.rows(
        "SELECT ?max ?mean WHERE { ?s a kg:Statement ; kg:maxConfidence ?max ; kg:meanConfidence ?mean }"
    )
    assert all(float(mean) <= float(mx) for mx, mean in stated)
    every = sum(1 for _ in store.triples())
    assert sum(1 for _ in store.triples(min_confidence=0.5)) == every - 2  # 创始人 (0.4) and located in (0.3)
    nt = export_graph(store, "nt", tmp_path / "g.nt", min_confidence=0.5).read_text(encoding="utf-8")
    edge = "/relation/located_in> <https://knowlm.org/kg/entity/"
    assert edge in export_graph(store, "nt", tmp_path / "all.nt").read_text(encoding="utf-8")
    assert edge not in nt and "/relation/总部> <https://knowlm.org/kg/entity/" in nt
    assert nt.count("/kg/Statement>") == every - 2  # their statements go with the edges


def test_extract_ntriples_and_the_store_name_one_fact_with_one_iri(tmp_path: Path) -> None:
    records = [{"id": "d3", "text": DOCS["d3"], "results": RESULTS["d3"]}]
    extracted = {line for line in export(records, "nt").splitlines() if "rdf-schema#label" not in line}
    store = GraphStore(tmp_path / "kg")
    store.load([write(tmp_path / "d3.jsonl", ["d3"])])
    stored = set(export_graph(store, "nt", tmp_path / "g.nt").read_text(encoding="utf-8").splitlines())
    assert len(extracted) == 1 and extracted <= stored


def test_kg_eval_scores_clustering_and_triples_against_docred_gold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sents = [["The", "United", "States", "Geological", "Survey", "(", "USGS", ")", "maps", "rivers", "."],
             ["USGS", "is", "based", "in", "Reston", "."]]  # fmt: skip
    gold = [
        {
            "title": "USGS",
            "sents": sents,
            "vertexSet": [
                [
                    {"name": "United States Geological Survey", "sent_id": 0, "pos": [1, 5], "type": "ORG"},
                    {"name": "USGS", "sent_id": 0, "pos": [6, 7], "type": "ORG"},
                    {"name": "USGS", "sent_id": 1, "pos": [0, 1], "type": "ORG"},
                ],
                [{"name": "Reston", "sent_id": 1, "pos": [4, 5], "type": "LOC"}],
            ],
            "labels": [{"h": 0, "t": 1, "r": "P159", "evidence": [1]}],
        }
    ]
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(gold), encoding="utf-8")
    (tmp_path / "rel_info.json").write_text(json.dumps({"P159": "headquarters location"}), encoding="utf-8")
    from knowlm.ie.convert import docred_text

    doc_text = docred_text(gold[0], "gold")[0]
    items = [
        {
            "head": name,
            "relation": "headquarters location",
            "tail": "Reston",
            "head_spans": [],
            "tail_spans": [],
        }
        for name in ("United States Geological Survey", "USGS")
    ]
    out = tmp_path / "x.jsonl"
    out.write_text(json.dumps({"id": "g1", "text": doc_text, "results": items}) + "\n", encoding="utf-8")
    kg = str(tmp_path / "kg")
    assert main(["kg", "build", str(out), "--store", kg, "--include-ungrounded"]) == 0
    assert main(["kg", "eval", "--store", kg, "--gold", str(path), "-o", str(tmp_path / "s.json")]) == 0
    scores = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert scores["clustering"]["exact"]["bcubed"]["recall"] < 1.0
    assert scores["clustering"]["resolved"]["bcubed"]["f1"] == 1.0
    assert scores["clustering"]["resolved"]["multi_name_share"] == 1.0
    # two names of one gold head: two statements (one a false positive) before resolution, one after
    assert scores["triples"]["exact"]["predicted"] == 2 and scores["triples"]["exact"]["precision"] == 0.5
    assert scores["triples"]["resolved"]["predicted"] == 1 and scores["triples"]["resolved"]["f1"] == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    assert main(["kg", "eval", "--store", kg, "--gold", str(bad)]) == 2
    assert "expected a JSON array" in capsys.readouterr().err


def test_an_embedding_model_proposes_merges(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel

    from knowlm.kg.embed import Embedder
    from tests.conftest import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    model_dir = tmp_path / "encoder"
    BertModel(config).save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    embed = Embedder(model_dir)
    vectors = embed(["Brussels South", "Brussels South", "Stadler Rail"])
    assert len(vectors) == 3 and len(vectors[0]) == 32
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-5 and vectors[0] == vectors[1]
    with pytest.raises(InputError, match="no model directory"):
        Embedder(tmp_path / "missing")
    from knowlm.kg.resolve import Occurrence, Resolver

    names = [Occurrence(("brussels zuid", "location"), "Brussels Zuid", "d1", 0),
             Occurrence(("brussels south", "location"), "Brussels South", "d2", 0)]  # fmt: skip
    merges = Resolver(spelling=False, embed=embed, embedding_threshold=-1.0).resolve(names).merges
    assert [m.rule for m in merges] == ["embedding"] and -1.0 <= merges[0].score <= 1.0
    assert Resolver(spelling=False, embed=embed, embedding_threshold=1.01).resolve(names).merges == []

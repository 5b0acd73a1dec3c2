"""The knowledge-graph store on a small hand-checked corpus: dedup, aliases, provenance, idempotent loading,
SPARQL answers, and exports that rdflib and networkx read back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("pyoxigraph", reason="pip install 'knowlm[kg]'")

from knowlm.cli.main import main
from knowlm.errors import InputError
from knowlm.kg.export import export_graph
from knowlm.kg.store import GraphStore, normalise

DOC1 = "Steve Jobs founded Apple in Cupertino."
DOC2 = "Apple, which steve  jobs founded, is headquartered in Cupertino."
DOC3 = "马云在杭州创立了阿里巴巴。"


def triple(head: str, relation: str, tail: str, text: str, grounded: bool = True) -> dict:
    h, t = text.find(head), text.find(tail)
    return {
        "head": head,
        "relation": relation,
        "tail": tail,
        "head_spans": [[h, h + len(head)]] if h >= 0 else [],
        "tail_spans": [[t, t + len(tail)]] if t >= 0 else [],
        "grounded": grounded,
    }


def record(doc_id: str, text: str, results: list[dict]) -> dict:
    return {"id": doc_id, "text": text, "task": "re", "results": results, "parse": {"ok": True}}


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A corpus run's output directory: two files and a manifest naming the model."""
    out = tmp_path / "out"
    out.mkdir()
    first = [
        record("d1", DOC1, [triple("Steve Jobs", "founder", "Apple", DOC1)]),
        record(
            "d2",
            DOC2,
            [
                triple("steve  jobs", "founder", "Apple", DOC2),
                triple("Apple", "headquartered in", "Cupertino", DOC2),
                triple("Apple", "founder", "Steve Wozniak", DOC2, grounded=False),
            ],
        ),
        {"id": "d9", "error": "bad input line"},
    ]
    second = [
        record("z1", DOC3, [triple("阿里巴巴", "创始人", "马云", DOC3)]),
        record(
            "z2",
            "Ｓｔｅｖｅ Ｊｏｂｓ",
            [{"type": "person", "text": "Ｓｔｅｖｅ Ｊｏｂｓ", "spans": [[0, 10]], "grounded": True}],
        ),
    ]
    (out / "a.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in first), encoding="utf-8"
    )
    (out / "b.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in second), encoding="utf-8"
    )
    manifest = {
        "settings": {"model": {"model": "default", "adapter": None}},
        "finished": "2026-12-02T08:00:00+0000",
    }
    (out / "knowlm-run.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out


def test_names_are_normalised_for_width_space_and_case() -> None:
    assert normalise("  Ｓｔｅｖｅ \t Jobs ") == "steve jobs"
    assert normalise("阿里巴巴") == "阿里巴巴"


def test_entities_are_deduplicated_and_support_counts_mentions(tmp_path: Path, outputs: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    report = store.load([outputs])
    assert (report.files, report.records, report.triples, report.entities) == (2, 5, 4, 1)
    assert report.skipped == 2  # the error record and the ungrounded triple
    stats = store.stats()
    assert stats["statements"] == 3  # (steve jobs, founder, apple) twice -> one statement
    assert stats["relations"] == {"founder": 1, "headquartered in": 1, "创始人": 1}
    assert stats["documents"] == 4
    _, rows = store.rows(
        "SELECT ?support WHERE { ?s rdf:subject ?h ; rdf:predicate rel:founder ; kg:support ?support . "
        "?h kg:name 'steve jobs' }"
    )
    assert rows == [["2"]]
    assert [r["tail"] for r in store.neighbourhood("STEVE JOBS")] == ["Apple"]
    assert {(r["head"], r["relation"], r["tail"]) for r in store.neighbourhood("apple")} == {
        ("Steve Jobs", "founder", "Apple"),
        ("Apple", "headquartered in", "Cupertino"),
    }
    # the typed NER mention is another entity than the untyped relation head of the same name
    _, typed = store.rows("SELECT ?e WHERE { ?e kg:name 'steve jobs' ; kg:type 'person' }")
    assert len(typed) == 1 and len(store.entities("Steve Jobs")) == 2


def test_loading_the_same_output_again_changes_nothing(tmp_path: Path, outputs: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([outputs])
    before = sorted(str(q) for q in store.store)
    again = store.load([outputs])
    assert again.mentions == 0
    assert sorted(str(q) for q in store.store) == before


def test_more_outputs_add_to_the_graph_and_raise_support(tmp_path: Path, outputs: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([outputs / "a.jsonl"])
    more = tmp_path / "more.jsonl"
    text = "Jobs started Apple."
    more.write_text(
        json.dumps(record("m1", text, [triple("Jobs", "founder", "Apple", text)])) + "\n", encoding="utf-8"
    )
    report = store.load([more], aliases={"Steve Jobs": ["Jobs", "Steven Paul Jobs"]}, model="my-model")
    assert report.mentions == 1
    top = store.neighbourhood("steve jobs")[0]
    assert (top["head"], top["tail"], top["support"]) == ("Steve Jobs", "Apple", 3)


def test_every_mention_keeps_its_provenance(tmp_path: Path, outputs: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([outputs])
    _, rows = store.rows(
        """SELECT ?doc ?source ?hs ?he ?ts ?te ?model ?time WHERE {
          ?s rdf:predicate rel:创始人 . ?m kg:of ?s ; kg:document ?doc ; kg:source ?source ;
          kg:head_start ?hs ; kg:head_end ?he ; kg:tail_start ?ts ; kg:tail_end ?te ;
          kg:model ?model ; kg:extractedAt ?time }"""
    )
    assert len(rows) == 1
    doc, source, hs, he, ts, te, model, time = rows[0]
    assert (doc, Path(source).name, model, time) == ("z1", "b.jsonl", "default", "2026-12-02T08:00:00Z")
    assert DOC3[int(hs) : int(he)] == "阿里巴巴" and DOC3[int(ts) : int(te)] == "马云"


def test_ungrounded_items_load_only_when_asked(tmp_path: Path, outputs: Path) -> None:
    store = GraphStore(tmp_path / "kg")
    store.load([outputs], include_ungrounded=True)
    assert any(r["tail"] == "Steve Wozniak" for r in store.neighbourhood("Apple"))


def test_min_confidence_leaves_unsure_items_out_and_mentions_keep_their_confidence(tmp_path: Path) -> None:
    sure = {**triple("Steve Jobs", "founder", "Apple", DOC1), "confidence": 0.9}
    unsure = {**triple("Apple", "located in", "Cupertino", DOC1), "confidence": 0.2}
    unknown = triple("Steve Jobs", "lives in", "Cupertino", DOC1)  # an engine that gave no confidence
    data = tmp_path / "out.jsonl"
    data.write_text(json.dumps(record("d1", DOC1, [sure, unsure, unknown])) + "\n", encoding="utf-8")
    store = GraphStore(tmp_path / "kg")
    report = store.load([data], min_confidence=0.5)
    assert (report.triples, report.skipped) == (1, 2)
    _, rows = store.rows("SELECT ?c WHERE { ?s rdf:predicate rel:founder . ?m kg:of ?s ; kg:confidence ?c }")
    assert [float(r[0]) for r in rows] == [0.9]
    everything = GraphStore(tmp_path / "kg2")
    assert everything.load([data]).triples == 3
    with pytest.raises(InputError, match="min-confidence"):
        everything.load([data], min_confidence=1.5)


def test_bad_inputs_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "results": []}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl line 2: invalid JSON"):
        GraphStore(tmp_path / "kg").load([bad])
    with pytest.raises(InputError, match="no such file"):
        GraphStore(tmp_path / "kg2").load([tmp_path / "nope"])
    with pytest.raises(InputError, match="no knowledge graph there"):
        GraphStore(tmp_path / "missing", read_only=True)


@pytest.mark.parametrize(
    "command", [["resolve"], ["resolve", "--undo"], ["split", "abc"], ["eval", "--gold", "g.json"]]
)
def test_commands_on_a_store_that_is_not_there_make_none(tmp_path: Path, capsys, command) -> None:
    """A mistyped --store fails with exit 2; `kg resolve` and `kg split` used to create an empty store."""
    (tmp_path / "g.json").write_text("[]")
    missing = tmp_path / "typo"
    args = ["kg", command[0], "--store", str(missing), *command[1:]]
    assert main([a.replace("g.json", str(tmp_path / "g.json")) for a in args]) == 2
    assert "no knowledge graph there" in capsys.readouterr().err and not missing.exists()


def test_exports_read_back_with_rdflib_networkx_and_as_neo4j_csv(tmp_path: Path, outputs: Path) -> None:
    import networkx as nx
    import rdflib

    store = GraphStore(tmp_path / "kg")
    store.load([outputs])
    quads = len(store.store)
    for fmt, rdf_format in (("nt", "nt"), ("ttl", "turtle")):
        path = export_graph(store, fmt, tmp_path / f"graph.{fmt}")
        graph = rdflib.Graph().parse(path, format=rdf_format)
        assert len(graph) == quads
    founder = rdflib.URIRef("https://knowlm.org/kg/relation/founder")
    assert len(list(graph.triples((None, founder, None)))) == 1

    graphml = nx.read_graphml(export_graph(store, "graphml", tmp_path / "graph.graphml"))
    labels = {data["label"] for _, data in graphml.nodes(data=True)}
    assert {"Steve Jobs", "Apple", "Cupertino", "马云", "阿里巴巴"} <= labels
    edges = {
        (graphml.nodes[u]["label"], d["relation"], graphml.nodes[v]["label"], d["support"])
        for u, v, d in graphml.edges(data=True)
    }
    assert ("Steve Jobs", "founder", "Apple", 2) in edges and len(edges) == 3

    neo = export_graph(store, "neo4j", tmp_path / "neo4j")
    with (neo / "relations.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0].keys() == {":START_ID", ":END_ID", ":TYPE", "support:int", "confidence:float"}
    assert len(rows) == 3
    with (neo / "entities.csv").open(encoding="utf-8") as f:
        ids = {r["iri:ID"] for r in csv.DictReader(f)}
    assert all(r[":START_ID"] in ids and r[":END_ID"] in ids for r in rows)


def test_the_cli_builds_queries_and_exports(
    tmp_path: Path, outputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kg = str(tmp_path / "kg")
    assert main(["kg", "build", str(outputs), "--store", kg]) == 0
    assert "4 triples" in capsys.readouterr().err
    query = (
        "SELECT ?founder WHERE { ?f rel:founder ?apple . ?apple kg:name 'apple' . ?f rdfs:label ?founder }"
    )
    assert main(["kg", "query", "--store", kg, query, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"founder": "Steve Jobs"}]
    assert main(["kg", "query", "--store", kg, "ASK { ?x rel:创始人 ?y }"]) == 0
    assert capsys.readouterr().out.strip() == "true"
    assert main(["kg", "query", "--store", kg, "SELECT WHERE {"]) == 2
    assert "SPARQL" in capsys.readouterr().err
    assert main(["kg", "stats", "--store", kg]) == 0
    assert json.loads(capsys.readouterr().out)["statements"] == 3
    assert main(["kg", "neighbours", "--store", kg, "阿里巴巴"]) == 0
    assert "创始人" in capsys.readouterr().out
    assert main(["kg", "neighbours", "--store", kg, "nobody"]) == 1
    assert main(["kg", "export", "--store", kg, "--format", "nt", "-o", str(tmp_path / "g.nt")]) == 0
    assert (tmp_path / "g.nt").stat().st_size > 0

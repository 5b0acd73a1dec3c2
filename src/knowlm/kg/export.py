"""Exports of the knowledge-graph store: RDF (N-Triples, Turtle), Neo4j bulk-import CSV and GraphML."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from knowlm.errors import InputError
from knowlm.ie.confidence import check_threshold, passes
from knowlm.io import atomic_write
from knowlm.kg.iri import PREFIXES
from knowlm.kg.store import GraphStore

GraphExporter = Callable[[GraphStore, Path, float], None]
_GRAPH_EXPORTERS: dict[str, GraphExporter] = {}


def register_graph_exporter(name: str, exporter: GraphExporter) -> None:
    """Add a format of `knowlm kg export --format`: (store, output path, minimum confidence of a relation
    statement) -> writes it, atomically."""
    if name in _GRAPH_EXPORTERS:
        raise ValueError(f"graph export format {name!r} is already registered")
    _GRAPH_EXPORTERS[name] = exporter


def graph_exporter_names() -> list[str]:
    return list(_GRAPH_EXPORTERS)


def export_graph(store: GraphStore, fmt: str, output: str | Path, *, min_confidence: float = 0.0) -> Path:
    """Write the graph as ``fmt`` to ``output`` (a file; a directory for ``neo4j``), atomically; with
    ``min_confidence``, only relation statements whose highest confidence reaches it."""
    if fmt not in _GRAPH_EXPORTERS:
        raise InputError(f"--format {fmt}: choose one of {', '.join(_GRAPH_EXPORTERS)}")
    check_threshold(min_confidence)
    _GRAPH_EXPORTERS[fmt](store, Path(output), min_confidence)
    return Path(output)


def _rdf(turtle: bool) -> GraphExporter:
    """The resolved graph and the record of mentions it is derived from, as one RDF graph (a relation's
    edge and statement left out when its confidence is below the minimum)."""

    def write(store: GraphStore, output: Path, min_confidence: float) -> None:
        ox = store.ox
        low: set[Any] = set()
        statements: set[Any] = set()
        for t in store.triples() if min_confidence > 0 else ():
            if not passes(t["confidence"], min_confidence):
                head, predicate, tail = (ox.NamedNode(t[k]) for k in ("head", "predicate", "tail"))
                low.add(ox.Triple(head, predicate, tail))
                statements.add(ox.NamedNode(t["statement"]))
        triples = (
            q.triple
            for q in store.store
            if q.triple not in low and q.subject not in statements and q.object not in statements
        )
        rdf = ox.RdfFormat.TURTLE if turtle else ox.RdfFormat.N_TRIPLES
        options = {"prefixes": PREFIXES} if turtle else {}
        with atomic_write(output, "wb") as f:
            ox.serialize(triples, f, rdf, **options)

    return write


def _neo4j(store: GraphStore, out: Path, min_confidence: float) -> None:
    """``entities.csv`` and ``relations.csv`` with neo4j-admin's header conventions (``:ID``, ``:LABEL``,
    ``:START_ID``, ``:END_ID``, ``:TYPE``): ``neo4j-admin database import full --nodes=entities.csv
    --relationships=relations.csv``. Written to a temp directory that replaces ``out`` when complete."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out}: the neo4j export is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        with (tmp / "entities.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["iri:ID", "name", "type", "support:int", ":LABEL"])
            for e in store.entity_table():
                writer.writerow([e["iri"], e["label"], e["type"], e["support"], "Entity"])
        with (tmp / "relations.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([":START_ID", ":END_ID", ":TYPE", "support:int", "confidence:float"])
            for t in store.triples(min_confidence=min_confidence):
                writer.writerow([t["head"], t["tail"], t["relation"], t["support"], t["confidence"]])
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _graphml(store: GraphStore, out: Path, min_confidence: float) -> None:
    """Entities as nodes (label, type, support), relation statements as directed edges (relation, support)."""
    ns = "http://graphml.graphdrawing.org/xmlns"
    root = ET.Element("graphml", xmlns=ns)
    keys = [
        ("label", "node"),
        ("type", "node"),
        ("support", "node"),
        ("relation", "edge"),
        ("support", "edge"),
    ]
    for name, where in keys:
        kind = "int" if name == "support" else "string"
        ET.SubElement(
            root, "key", {"id": f"{where}_{name}", "for": where, "attr.name": name, "attr.type": kind}
        )
    graph = ET.SubElement(root, "graph", id="knowlm", edgedefault="directed")
    for e in store.entity_table():
        node = ET.SubElement(graph, "node", id=e["iri"])
        for name in ("label", "type", "support"):
            ET.SubElement(node, "data", key=f"node_{name}").text = str(e[name])
    for i, t in enumerate(store.triples(min_confidence=min_confidence)):
        edge = ET.SubElement(graph, "edge", id=f"e{i}", source=t["head"], target=t["tail"])
        ET.SubElement(edge, "data", key="edge_relation").text = t["relation"]
        ET.SubElement(edge, "data", key="edge_support").text = str(t["support"])
    with atomic_write(out, "wb") as f:
        ET.ElementTree(root).write(f, encoding="utf-8", xml_declaration=True)


register_graph_exporter("nt", _rdf(turtle=False))
register_graph_exporter("ttl", _rdf(turtle=True))
register_graph_exporter("neo4j", _neo4j)
register_graph_exporter("graphml", _graphml)

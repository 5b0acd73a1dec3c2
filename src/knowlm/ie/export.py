"""Writing extraction records as JSON, CSV, N-Triples or GraphML (a list of `knowlm extract` records)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from knowlm.errors import InputError
from knowlm.kg.iri import RDFS, entity_iri, relation_iri

Exporter = Callable[[list[dict[str, Any]]], str]
_EXPORTERS: dict[str, Exporter] = {}


def register_exporter(name: str, exporter: Exporter) -> None:
    """Add an output format of `knowlm extract --format` (records -> the file's text)."""
    if name in _EXPORTERS or name == "table":
        raise ValueError(f"export format {name!r} is already registered")
    _EXPORTERS[name] = exporter


def exporter_names() -> list[str]:
    return list(_EXPORTERS)


def _rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        for item in record.get("results", []):
            row = {"id": record.get("id")}
            if "relation" in item:
                row |= {
                    "kind": "triple",
                    "type": item["relation"],
                    "text": item["tail"],
                    "head": item["head"],
                    "start": _first_start(item.get("tail_spans")),
                    "head_start": _first_start(item.get("head_spans")),
                }
            elif "arguments" in item:
                args = "; ".join(f"{a['role']}={a['text']}" for a in item["arguments"])
                row |= {
                    "kind": "event",
                    "type": item["type"],
                    "text": item.get("trigger") or "",
                    "arguments": args,
                    "start": _first_start(item.get("trigger_spans")),
                }
            else:
                row |= {
                    "kind": "entity",
                    "type": item["type"],
                    "text": item["text"],
                    "start": _first_start(item.get("spans")),
                }
            row["confidence"] = item.get("confidence")
            row["grounded"] = item.get("grounded")
            rows.append(row)
    return rows


def _first_start(spans: Any) -> int | None:
    return spans[0][0] if spans else None


def to_csv(records: list[dict[str, Any]]) -> str:
    """One row per extracted item: id, kind, type (relation for triples), text (tail), head, ..."""
    fields = [
        "id", "kind", "type", "head", "text", "arguments", "start", "head_start", "confidence", "grounded"
    ]  # fmt: skip
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_rows(records))
    return out.getvalue()


def _triples(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    triples = [item for record in records for item in record.get("results", []) if "relation" in item]
    if records and not triples and any(r.get("results") for r in records):
        raise InputError("N-Triples and GraphML export need triples (tasks re, spo, kg)")
    return triples


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def to_ntriples(records: list[dict[str, Any]]) -> str:
    """Triples as N-Triples (deduplicated), each entity and relation labelled, in the IRIs of the graph store
    (``knowlm.kg.iri``): the same fact exported here and by ``knowlm kg export`` is one triple."""
    lines: dict[str, None] = {}
    for t in _triples(records):
        head, tail = entity_iri(t["head"], t.get("head_type")), entity_iri(t["tail"], t.get("tail_type"))
        relation = relation_iri(t["relation"])
        lines[f"<{head}> <{relation}> <{tail}> ."] = None
        for iri, label in ((head, t["head"]), (relation, t["relation"]), (tail, t["tail"])):
            lines[f"<{iri}> <{RDFS}label> {_literal(' '.join(label.split()))} ."] = None
    return "".join(line + "\n" for line in lines)


def to_graphml(records: list[dict[str, Any]]) -> str:
    """Triples as a directed GraphML graph: entities are nodes, relations labelled edges."""
    ns = "http://graphml.graphdrawing.org/xmlns"
    root = ET.Element("graphml", xmlns=ns)
    ET.SubElement(
        root, "key", id="label", attrib={"for": "node", "attr.name": "label", "attr.type": "string"}
    )
    ET.SubElement(
        root, "key", id="relation", attrib={"for": "edge", "attr.name": "relation", "attr.type": "string"}
    )
    graph = ET.SubElement(root, "graph", id="knowlm", edgedefault="directed")
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()

    def node(name: str) -> str:
        if name not in nodes:
            nodes[name] = f"n{len(nodes)}"
            ET.SubElement(ET.SubElement(graph, "node", id=nodes[name]), "data", key="label").text = name
        return nodes[name]

    for t in _triples(records):
        edge = (node(t["head"]), node(t["tail"]), t["relation"])
        if edge not in edges:
            edges.add(edge)
            element = ET.SubElement(graph, "edge", source=edge[0], target=edge[1])
            ET.SubElement(element, "data", key="relation").text = edge[2]
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def export(records: list[dict[str, Any]], fmt: str) -> str:
    if fmt not in _EXPORTERS:
        raise InputError(f"--format {fmt!r} is not one of {', '.join(_EXPORTERS)}")
    return _EXPORTERS[fmt](records)


register_exporter("jsonl", lambda records: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
register_exporter("json", lambda records: json.dumps(records, ensure_ascii=False, indent=1) + "\n")
register_exporter("csv", to_csv)
register_exporter("nt", to_ntriples)
register_exporter("graphml", to_graphml)

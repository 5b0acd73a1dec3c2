"""The knowledge-graph store: extraction records in, an RDF graph you can query with SPARQL out.

Embedded Oxigraph (pyoxigraph) on disk. The graph, in the ``kg:`` namespace:

- entity ``kg:entity/<hash of (normalised name, type)>``: ``a kg:Entity``, ``kg:name`` (normalised),
  ``rdfs:label`` (the first surface form seen), ``kg:type`` (absent when untyped), ``kg:support``;
- a relation is a predicate ``rel:<name>`` (``rdfs:label`` its name), asserted directly between the two
  entities (``?head ?relation ?tail``) and described by a statement ``kg:statement/<hash>`` (``rdf:subject``,
  ``rdf:predicate``, ``rdf:object``, ``kg:support`` = the number of its mentions);
- an event ``kg:event/<hash>``: ``a kg:Event``, ``kg:type``, ``kg:trigger``, one ``role:<role>`` edge per
  argument entity;
- a mention ``kg:mention/<hash>`` is the provenance of one extraction: ``kg:of`` (the statement, entity or
  event), ``kg:document``, ``kg:source`` (file), character offsets, ``kg:model`` and ``kg:extractedAt``.

Every IRI is a hash of what identifies it, so loading the same output twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from knowlm.errors import InputError, MissingDependencyError
from knowlm.ie.confidence import check_threshold, passes

KG = "https://knowlm.org/kg/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
REL = KG + "relation/"
ROLE = KG + "role/"
PREFIXES = {"kg": KG, "rel": REL, "role": ROLE, "rdf": RDF, "rdfs": RDFS, "xsd": XSD}
RUN_MANIFEST = "knowlm-run.json"


def _ox() -> Any:
    try:
        import pyoxigraph
    except ImportError:
        raise MissingDependencyError(
            "the knowledge-graph store needs pyoxigraph: pip install 'knowlm[kg]'"
        ) from None
    return pyoxigraph


def normalise(name: str) -> str:
    """The form entities are deduplicated by: Unicode NFKC (full-width -> ASCII), whitespace collapsed, and case
    folded (scripts without case, such as Chinese, are unchanged)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()


def _hash(*parts: Any) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:20]


def entity_iri(name: str, type_: str | None) -> str:
    return f"{KG}entity/{_hash(normalise(name), normalise(type_ or ''))}"


def _local(name: str) -> str:
    """A name as the readable last part of an IRI: normalised, spaces as ``_``, only the characters IRIs
    forbid percent-encoded (so a query can say ``rel:founder`` or ``rel:创始人``)."""
    return "".join(
        c if c.isprintable() and c not in '<>"{}|\\^`%/?#' else quote(c, safe="")
        for c in normalise(name).replace(" ", "_")
    )


def relation_iri(relation: str) -> str:
    return REL + _local(relation)


def role_iri(role: str) -> str:
    return ROLE + _local(role)


@dataclass
class LoadReport:
    files: int = 0
    records: int = 0
    skipped: int = 0
    """Error records and items left out (ungrounded unless asked for)."""
    entities: int = 0
    triples: int = 0
    events: int = 0
    mentions: int = 0
    """New mentions (0 when the same output is loaded again)."""
    quads: int = 0


@dataclass
class Provenance:
    source: str
    model: str
    time: str


@dataclass
class _Batch:
    quads: list[Any] = field(default_factory=list)
    counted: set[str] = field(default_factory=set)
    """Statements, entities and events whose support must be recounted."""
    mentions: list[Any] = field(default_factory=list)
    entities: set[str] = field(default_factory=set)


def extraction_files(paths: Iterable[str | Path]) -> list[Path]:
    """The JSONL files of extraction outputs: files as given, directories searched for ``*.jsonl``."""
    found: list[Path] = []
    for spec in paths:
        path = Path(spec)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.jsonl") if not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{spec}: no such file or directory")
    if not found:
        raise InputError(f"no extraction outputs (*.jsonl) in {', '.join(map(str, paths))}")
    return found


def _run_info(file: Path) -> tuple[str | None, str | None]:
    """(model, finish time) from the run manifest of a corpus run's output directory, when there is one."""
    for parent in file.parents:
        manifest = parent / RUN_MANIFEST
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                return None, None
            model = data.get("settings", {}).get("model", {})
            name = model.get("model")
            if name and model.get("adapter"):
                name = f"{name}+{model['adapter']}"
            return name, data.get("finished")
    return None, None


class GraphStore:
    """An embedded, on-disk knowledge graph. ``GraphStore(path)`` opens (or creates) it; read-only opening lets
    several readers (e.g. the web UI) share a store that no process is writing."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        ox = _ox()
        self.path = Path(path)
        if read_only:
            if not self.path.is_dir():
                raise InputError(f"--store {path}: no knowledge graph there (build one with knowlm kg build)")
            self.store = ox.Store.read_only(str(self.path))
        else:
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"--store {path}: expected a directory")
            try:
                self.store = ox.Store(str(self.path))
            except OSError as exc:
                raise InputError(
                    f"--store {path}: cannot open it ({exc}); is another process writing it?"
                ) from None
        self.ox = ox

    # --- loading -------------------------------------------------------------------------------------

    def load(
        self,
        paths: Iterable[str | Path],
        *,
        aliases: dict[str, list[str]] | None = None,
        model: str | None = None,
        include_ungrounded: bool = False,
        min_confidence: float = 0.0,
    ) -> LoadReport:
        """Add extraction outputs (``knowlm extract`` JSONL records, or corpus-run directories) to the graph.
        ``aliases`` (entity -> alias names) maps every alias onto its entity's name before deduplication;
        items of confidence below ``min_confidence`` (or without one, when it is above 0) are left out."""
        check_threshold(min_confidence)
        canonical = {normalise(a): name for name, names in (aliases or {}).items() for a in names}
        report = LoadReport()
        for file in extraction_files(paths):
            run_model, run_time = _run_info(file)
            stamp = datetime.fromtimestamp(file.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            provenance = Provenance(
                source=str(file), model=model or run_model or "unknown", time=_xsd_time(run_time) or stamp
            )
            batch = _Batch()
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{file} line {number}: invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("results", []), list):
                    raise InputError(f"{file} line {number}: not a knowlm extract record")
                report.records += 1
                if "error" in record or "results" not in record:
                    report.skipped += 1
                    continue
                for item in record["results"]:
                    if not isinstance(item, dict):
                        raise InputError(f"{file} line {number}: a result is not a JSON object")
                    if item.get("grounded") is False and not include_ungrounded:
                        report.skipped += 1
                        continue
                    if not passes(item.get("confidence"), min_confidence):
                        report.skipped += 1
                        continue
                    self._item(batch, item, str(record.get("id", number)), provenance, canonical, report)
            report.mentions += self._commit(batch)
            report.quads += len(batch.quads)
            report.files += 1
        self.store.flush()
        return report

    def _item(
        self,
        batch: _Batch,
        item: dict[str, Any],
        doc: str,
        prov: Provenance,
        canonical: dict[str, str],
        report: LoadReport,
    ) -> None:
        if "relation" in item:
            head = self._entity(batch, item["head"], item.get("head_type"), canonical)
            tail = self._entity(batch, item["tail"], item.get("tail_type"), canonical)
            predicate = relation_iri(item["relation"])
            statement = f"{KG}statement/{_hash(head, predicate, tail)}"
            batch.quads += [
                self._quad(head, predicate, tail),
                self._quad(predicate, RDFS + "label", self._literal(item["relation"])),
                self._quad(statement, RDF + "type", KG + "Statement"),
                self._quad(statement, RDF + "subject", head),
                self._quad(statement, RDF + "predicate", predicate),
                self._quad(statement, RDF + "object", tail),
            ]
            spans = {"head": item.get("head_spans"), "tail": item.get("tail_spans")}
            self._mention(batch, [statement, head, tail], doc, prov, spans, item.get("confidence"))
            report.triples += 1
        elif "arguments" in item or "trigger" in item:
            event = f"{KG}event/{_hash(prov.source, doc, item['type'], item.get('trigger'), item.get('trigger_spans'))}"
            batch.quads += [
                self._quad(event, RDF + "type", KG + "Event"),
                self._quad(event, KG + "type", self._literal(item["type"])),
            ]
            if item.get("trigger"):
                batch.quads.append(self._quad(event, KG + "trigger", self._literal(item["trigger"])))
            for argument in item.get("arguments", []):
                entity = self._entity(batch, argument["text"], None, canonical)
                batch.quads.append(self._quad(event, role_iri(argument["role"]), entity))
            self._mention(
                batch, [event], doc, prov, {"trigger": item.get("trigger_spans")}, item.get("confidence")
            )
            report.events += 1
        else:
            entity = self._entity(batch, item["text"], item.get("type"), canonical)
            self._mention(batch, [entity], doc, prov, {"": item.get("spans")}, item.get("confidence"))
            report.entities += 1

    def _entity(self, batch: _Batch, name: str, type_: str | None, canonical: dict[str, str]) -> str:
        name = canonical.get(normalise(name), name)
        iri = entity_iri(name, type_)
        if iri not in batch.entities:
            batch.quads += [
                self._quad(iri, RDF + "type", KG + "Entity"),
                self._quad(iri, KG + "name", self._literal(normalise(name))),
            ]
            if type_:
                batch.quads.append(self._quad(iri, KG + "type", self._literal(type_)))
            label = self.ox.NamedNode(RDFS + "label")
            if not any(True for _ in self.store.quads_for_pattern(self.ox.NamedNode(iri), label, None)):
                batch.quads.append(self._quad(iri, RDFS + "label", self._literal(name.strip())))
            batch.entities.add(iri)
        return iri

    def _mention(
        self,
        batch: _Batch,
        targets: list[str],
        doc: str,
        prov: Provenance,
        spans: dict[str, Any],
        confidence: Any = None,
    ) -> None:
        """One extraction of ``targets[0]`` (a triple's mention is also one of its head and tail entities),
        with the confidence the extraction gave it."""
        first = {k: v[0] for k, v in spans.items() if v}
        mention = f"{KG}mention/{_hash(targets[0], prov.source, doc, json.dumps(first))}"
        batch.mentions.append(self._quad(mention, KG + "of", targets[0]))
        batch.quads += [self._quad(mention, KG + "of", target) for target in targets]
        batch.counted.update(targets)
        batch.quads += [
            self._quad(mention, KG + "document", self._literal(doc)),
            self._quad(mention, KG + "source", self._literal(prov.source)),
            self._quad(mention, KG + "model", self._literal(prov.model)),
            self._quad(mention, KG + "extractedAt", self._literal(prov.time, XSD + "dateTime")),
        ]
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            value = f"{min(max(float(confidence), 0.0), 1.0):.4f}"
            batch.quads.append(self._quad(mention, KG + "confidence", self._literal(value, XSD + "decimal")))
        for key, (start, end) in first.items():
            prefix = f"{key}_" if key else ""
            batch.quads.append(
                self._quad(mention, f"{KG}{prefix}start", self._literal(str(start), XSD + "integer"))
            )
            batch.quads.append(
                self._quad(mention, f"{KG}{prefix}end", self._literal(str(end), XSD + "integer"))
            )

    def _commit(self, batch: _Batch) -> int:
        """Write a file's quads in one transaction, then recount the support of what it touched; returns the
        number of new mentions."""
        new = len({q for q in batch.mentions if q not in self.store})
        self.store.extend(batch.quads)
        of = self.ox.NamedNode(KG + "of")
        support = self.ox.NamedNode(KG + "support")
        updates = []
        for iri in batch.counted:
            node = self.ox.NamedNode(iri)
            count = sum(1 for _ in self.store.quads_for_pattern(None, of, node))
            if count:
                for old in list(self.store.quads_for_pattern(node, support, None)):
                    self.store.remove(old)
                updates.append(self._quad(iri, KG + "support", self._literal(str(count), XSD + "integer")))
        self.store.extend(updates)
        return new

    def _quad(self, s: str, p: str, o: Any) -> Any:
        ox = self.ox
        obj = ox.NamedNode(o) if isinstance(o, str) else o
        return ox.Quad(ox.NamedNode(s), ox.NamedNode(p), obj, ox.DefaultGraph())

    def _literal(self, value: str, datatype: str | None = None) -> Any:
        if datatype:
            return self.ox.Literal(value, datatype=self.ox.NamedNode(datatype))
        return self.ox.Literal(value)

    # --- reading -------------------------------------------------------------------------------------

    def query(self, sparql: str) -> Any:
        """Run a SPARQL query (the ``kg:``, ``rdf:``, ``rdfs:`` and ``xsd:`` prefixes are predeclared)."""
        declared = {m.lower() for m in re.findall(r"PREFIX\s+(\w*):", sparql, flags=re.IGNORECASE)}
        head = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in PREFIXES.items() if p not in declared)
        try:
            return self.store.query(head + sparql)
        except SyntaxError as exc:
            raise InputError(f"SPARQL: {exc}") from None

    def rows(self, sparql: str) -> tuple[list[str], list[list[str | None]]]:
        """A SELECT query's (variable names, rows of plain values)."""
        return solution_rows(self.query(sparql))

    def stats(self) -> dict[str, Any]:
        """Counts: entities (by type), relation edges (by relation), statements, events, mentions, documents."""

        def one(query: str) -> int:
            return int(self.rows(query)[1][0][0] or 0)

        def by(query: str) -> dict[str, int]:
            return {k or "(untyped)": int(v or 0) for k, v in self.rows(query)[1]}

        return {
            "quads": len(self.store),
            "entities": one("SELECT (COUNT(?e) AS ?n) WHERE { ?e a kg:Entity }"),
            "statements": one("SELECT (COUNT(?s) AS ?n) WHERE { ?s a kg:Statement }"),
            "events": one("SELECT (COUNT(?e) AS ?n) WHERE { ?e a kg:Event }"),
            "mentions": one("SELECT (COUNT(DISTINCT ?m) AS ?n) WHERE { ?m kg:of ?x }"),
            "documents": one(
                "SELECT (COUNT(DISTINCT ?d) AS ?n) WHERE { ?m kg:source ?f ; kg:document ?id BIND(CONCAT(?f, ?id) AS ?d) }"
            ),
            "entity_types": by(
                "SELECT ?t (COUNT(?e) AS ?n) WHERE { ?e a kg:Entity OPTIONAL { ?e kg:type ?t } } GROUP BY ?t ORDER BY DESC(?n)"
            ),
            "relations": by(
                "SELECT ?r (COUNT(?s) AS ?n) WHERE { ?s a kg:Statement ; rdf:predicate ?p . ?p rdfs:label ?r } "
                "GROUP BY ?r ORDER BY DESC(?n)"
            ),
        }

    def entities(self, name: str) -> list[str]:
        """The entity IRIs whose normalised name is ``name``'s (any type)."""
        return [
            str(q.subject.value)
            for q in self.store.quads_for_pattern(
                None, self.ox.NamedNode(KG + "name"), self.ox.Literal(normalise(name))
            )
        ]

    def neighbourhood(self, name: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """The relation statements in which an entity named ``name`` is head or tail, most supported first."""
        found = self.entities(name)
        if not found:
            return []
        values = " ".join(f"<{iri}>" for iri in found)
        _, rows = self.rows(
            f"""SELECT ?head ?relation ?tail ?support WHERE {{
              VALUES ?e {{ {values} }}
              {{ ?s rdf:subject ?e }} UNION {{ ?s rdf:object ?e }}
              ?s a kg:Statement ; rdf:subject ?h ; rdf:predicate ?p ; rdf:object ?t ; kg:support ?support .
              ?h rdfs:label ?head . ?t rdfs:label ?tail . ?p rdfs:label ?relation .
            }} ORDER BY DESC(?support) ?head ?relation ?tail LIMIT {int(limit)}"""
        )
        return [{"head": h, "relation": r, "tail": t, "support": int(s or 0)} for h, r, t, s in rows]

    def triples(self) -> Iterator[dict[str, Any]]:
        """Every relation statement with its entities (for exports)."""
        _, rows = self.rows(
            """SELECT ?h ?p ?t ?relation ?support WHERE {
              ?s a kg:Statement ; rdf:subject ?h ; rdf:predicate ?p ; rdf:object ?t ; kg:support ?support .
              ?p rdfs:label ?relation } ORDER BY ?h ?p ?t"""
        )
        for h, p, t, relation, support in rows:
            yield {"head": h, "predicate": p, "tail": t, "relation": relation, "support": int(support or 0)}

    def entity_table(self) -> Iterator[dict[str, Any]]:
        _, rows = self.rows(
            """SELECT ?e ?label ?type ?support WHERE { ?e a kg:Entity ; rdfs:label ?label .
              OPTIONAL { ?e kg:type ?type } OPTIONAL { ?e kg:support ?support } } ORDER BY ?e"""
        )
        for e, label, type_, support in rows:
            yield {"iri": e, "label": label, "type": type_ or "", "support": int(support or 0)}


def solution_rows(result: Any) -> tuple[list[str], list[list[str | None]]]:
    """The (variable names, rows of plain values) of a SELECT query's result."""
    if not hasattr(result, "variables"):
        raise InputError("expected a SELECT query")
    names = [v.value for v in result.variables]
    return names, [[_plain(solution[n]) for n in names] for solution in result]


def _plain(term: Any) -> str | None:
    return None if term is None else str(term.value)


def _xsd_time(value: str | None) -> str | None:
    """A manifest time (``2026-12-02T08:57:00+0000``) as an xsd:dateTime in UTC."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None

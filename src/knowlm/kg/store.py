"""The knowledge-graph store: extraction records in, an RDF graph you can query with SPARQL out.

Embedded Oxigraph (pyoxigraph) on disk, in two layers:

- the **record** (named graph ``kg:graph/raw``), written by loading and never rewritten: each mention
  ``kg:mention/<hash>`` (``a kg:Mention``) keeps the extracted item as written (``kg:item``, JSON), its document
  (``kg:in`` a ``kg:document/<hash>`` node with ``kg:id``, ``kg:source`` and ``kg:text``; also ``kg:document``
  and ``kg:source`` literals), character offsets (``kg:start``/``kg:end``, ``kg:head_start``, ...),
  ``kg:confidence``, ``kg:model`` and ``kg:extractedAt``; and the user's decisions: alias entries, merges they
  undid (``kg:Decision``), the resolution settings (``kg:resolution``);
- the **graph** (the default graph), derived from the record by :meth:`GraphStore.rebuild` after every change:
  entities ``kg:entity/<hash of (name, type)>`` (``a kg:Entity``, ``kg:name`` for every name it goes by,
  ``rdfs:label``, ``kg:alias`` for its other surface forms, ``kg:type`` when typed, ``kg:support``); a relation
  is a predicate ``rel:<name>`` asserted between two entities and described by a statement
  ``kg:statement/<hash>`` (``rdf:subject``/``rdf:predicate``/``rdf:object``, ``kg:support`` = its mentions,
  ``kg:maxConfidence`` and ``kg:meanConfidence`` over them); events ``kg:event/<hash>`` with one ``role:<role>``
  edge per argument; ``?mention kg:of ?node`` links the two layers; and when the graph is resolved, every
  merge ``kg:merge/<id>`` with its rule, score, names and evidence (``knowlm kg explain``).

Queries see both layers (the default graph is their union). Every IRI is a hash of what identifies it, so
loading the same output twice changes nothing, and the graph is a function of the record: loading more
documents into a resolved graph gives the graph of resolving them all at once.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knowlm.errors import InputError, MissingDependencyError
from knowlm.ie.confidence import check_threshold, passes
from knowlm.kg.iri import KG, PREFIXES, RDF, RDFS, XSD, digest, entity_iri, normalise, relation_iri, role_iri
from knowlm.kg.resolve import NameKey, Occurrence, Resolution, Resolver, label_rank

__all__ = ["KG", "PREFIXES", "GraphStore", "LoadReport", "ResolveSettings", "normalise", "solution_rows"]

RUN_MANIFEST = "knowlm-run.json"
RAW = KG + "graph/raw"
RESOLUTION = KG + "resolution"


def _ox() -> Any:
    try:
        import pyoxigraph
    except ImportError:
        raise MissingDependencyError(
            "the knowledge-graph store needs pyoxigraph: pip install 'knowlm[kg]'"
        ) from None
    return pyoxigraph


@dataclass
class LoadReport:
    files: int = 0
    records: int = 0
    skipped: int = 0
    """Error records and items left out (ungrounded unless asked for, or below the confidence asked for)."""
    entities: int = 0
    triples: int = 0
    events: int = 0
    mentions: int = 0
    """New mentions (0 when the same output is loaded again)."""
    merges: int = 0
    """Merges of the resolved graph after loading (0 when it is not resolved)."""


@dataclass
class ResolveSettings:
    """How a graph is resolved (kept in the store, so that loading more documents resolves them alike)."""

    spelling: bool = True
    global_short_forms: bool = True
    embedding_model: str | None = None
    embedding_threshold: float = 0.92

    def resolver(self) -> Resolver:
        embed = None
        if self.embedding_model:
            from knowlm.kg.embed import Embedder

            embed = Embedder(self.embedding_model)
        return Resolver(
            spelling=self.spelling,
            global_short_forms=self.global_short_forms,
            embed=embed,
            embedding_threshold=self.embedding_threshold,
        )


@dataclass
class _Mention:
    iri: str
    document: str
    """The document's key: ``source#id``."""
    item: dict[str, Any]
    confidence: float | None


@dataclass
class _Derived:
    """The graph being rebuilt: quads, and the mentions and confidences of each node."""

    quads: list[Any] = field(default_factory=list)
    support: Counter[str] = field(default_factory=Counter)
    confidences: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    entities: dict[NameKey, str] = field(default_factory=dict)
    relations: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


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


def _key(name: str, type_: Any) -> NameKey:
    return normalise(name), normalise(type_) if isinstance(type_, str) else ""


def _start(spans: Any) -> int | None:
    """The first span's start, when ``spans`` is a list of [start, end] pairs."""
    if isinstance(spans, list) and spans and isinstance(spans[0], list | tuple) and len(spans[0]) == 2:
        start = spans[0][0]
        return start if isinstance(start, int) else None
    return None


def _occurrences(mention: _Mention) -> Iterator[tuple[str, Any, Any]]:
    """(name, type, spans) of each entity name a mention's item names."""
    item = mention.item
    if "relation" in item:
        yield item["head"], item.get("head_type"), item.get("head_spans")
        yield item["tail"], item.get("tail_type"), item.get("tail_spans")
    elif "arguments" in item or "trigger" in item:
        for argument in item.get("arguments", []):
            yield argument["text"], None, argument.get("spans")
    else:
        yield item["text"], item.get("type"), item.get("spans")


def _check_item(item: Any, where: str) -> dict[str, Any]:
    """An extracted item with the fields the graph reads, or a clear error naming ``where``."""
    if not isinstance(item, dict):
        raise InputError(f"{where}: a result is not a JSON object")
    needed: tuple[str, ...]
    if "relation" in item:
        needed = ("head", "relation", "tail")
    elif "arguments" in item or "trigger" in item:
        needed = ("type",)
        arguments = item.get("arguments", [])
        if not isinstance(arguments, list) or not all(
            isinstance(a, dict) and isinstance(a.get("text"), str) and isinstance(a.get("role"), str)
            for a in arguments
        ):
            raise InputError(f"{where}: an event's arguments must be objects with 'role' and 'text'")
    else:
        needed = ("text",)
    for name in needed:
        if not isinstance(item.get(name), str) or not item[name].strip():
            raise InputError(f"{where}: a result has no {name!r} string")
    return item


class GraphStore:
    """An embedded, on-disk knowledge graph. ``GraphStore(path)`` opens (or creates) it; read-only opening lets
    several readers (e.g. the web UI) share a store that no process is writing."""

    def __init__(self, path: str | Path, *, read_only: bool = False, must_exist: bool = False) -> None:
        """Open the store at ``path``: read-only, or for writing — created there unless ``must_exist``
        (commands that change a graph, such as resolve and split, never make an empty one by mistake)."""
        ox = _ox()
        self.path = Path(path)
        if (read_only or must_exist) and not self.path.is_dir():
            raise InputError(f"--store {path}: no knowledge graph there (build one with knowlm kg build)")
        if read_only:
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
        self.raw = ox.NamedNode(RAW)

    # --- loading -------------------------------------------------------------------------------------

    def load(
        self,
        paths: Iterable[str | Path],
        *,
        aliases: dict[str, list[str]] | None = None,
        model: str | None = None,
        include_ungrounded: bool = False,
        min_confidence: float = 0.0,
        resolve: ResolveSettings | bool | None = None,
    ) -> LoadReport:
        """Add extraction outputs (``knowlm extract`` JSONL records, or corpus-run directories) to the record,
        then rebuild the graph. ``resolve``: None keeps the store as it is (resolved or not), True resolves it
        (with the settings it has, else the defaults), False goes back to exact names, settings resolve so.
        ``aliases`` (entity -> alias names) are kept and merge every alias into its entity; items of confidence
        below ``min_confidence`` (or without one, when it is above 0) are left out."""
        check_threshold(min_confidence)
        files = extraction_files(paths)
        report = LoadReport(files=len(files))
        quads: list[Any] = []
        for name, names in sorted((aliases or {}).items()):
            for alias in names:
                entry = f"{KG}aliasEntry/{digest(normalise(alias), normalise(name))}"
                quads += [
                    self._quad(entry, RDF + "type", KG + "AliasEntry", raw=True),
                    self._quad(entry, KG + "name", self._literal(" ".join(name.split())), raw=True),
                    self._quad(entry, KG + "alias", self._literal(normalise(alias)), raw=True),
                ]
        for file in files:
            run_model, run_time = _run_info(file)
            stamp = datetime.fromtimestamp(file.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            source, used = str(file), model or run_model or "unknown"
            time = _xsd_time(run_time) or stamp
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
                doc_id = str(record.get("id", number))
                document = f"{KG}document/{digest(source, doc_id)}"
                kept = []
                for item in record["results"]:
                    item = _check_item(item, f"{file} line {number}")
                    if (item.get("grounded") is False and not include_ungrounded) or not passes(
                        item.get("confidence"), min_confidence
                    ):
                        report.skipped += 1
                    else:
                        kept.append(item)
                if not kept:
                    continue
                quads += [
                    self._quad(document, RDF + "type", KG + "Document", raw=True),
                    self._quad(document, KG + "id", self._literal(doc_id), raw=True),
                    self._quad(document, KG + "source", self._literal(source), raw=True),
                ]
                if isinstance(record.get("text"), str):
                    quads.append(self._quad(document, KG + "text", self._literal(record["text"]), raw=True))
                for item in kept:
                    quads += self._mention(item, document, doc_id, source, used, time, report)
        new = {q.subject for q in quads if q.object == self.ox.NamedNode(KG + "Mention")}
        report.mentions = sum(
            1 for m in new if not any(True for _ in self.store.quads_for_pattern(m, None, None, self.raw))
        )
        self.store.extend(quads)
        if isinstance(resolve, ResolveSettings) or resolve is False:
            self._set_settings(resolve or None)
        elif resolve is True and self.settings() is None:
            self._set_settings(ResolveSettings())
        report.merges = self.rebuild()
        self.store.flush()
        return report

    def _mention(
        self,
        item: dict[str, Any],
        document: str,
        doc_id: str,
        source: str,
        model: str,
        time: str,
        report: LoadReport,
    ) -> list[Any]:
        """The record of one extracted item."""
        mention = (
            f"{KG}mention/{digest(source, doc_id, json.dumps(item, sort_keys=True, ensure_ascii=False))}"
        )
        quads = [
            self._quad(mention, RDF + "type", KG + "Mention"),
            self._quad(mention, KG + "item", self._literal(json.dumps(item, ensure_ascii=False))),
            self._quad(mention, KG + "in", document),
            self._quad(mention, KG + "document", self._literal(doc_id)),
            self._quad(mention, KG + "source", self._literal(source)),
            self._quad(mention, KG + "model", self._literal(model)),
            self._quad(mention, KG + "extractedAt", self._literal(time, XSD + "dateTime")),
        ]
        confidence = item.get("confidence")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            value = f"{min(max(float(confidence), 0.0), 1.0):.4f}"
            quads.append(self._quad(mention, KG + "confidence", self._literal(value, XSD + "decimal")))
        spans: dict[str, Any]
        if "relation" in item:
            spans = {"head_": item.get("head_spans"), "tail_": item.get("tail_spans")}
            report.triples += 1
        elif "arguments" in item or "trigger" in item:
            spans = {"trigger_": item.get("trigger_spans")}
            report.events += 1
        else:
            spans = {"": item.get("spans")}
            report.entities += 1
        for prefix, given in spans.items():
            start = _start(given)
            if start is not None:
                end = given[0][1]
                quads.append(
                    self._quad(mention, f"{KG}{prefix}start", self._literal(str(start), XSD + "integer"))
                )
                quads.append(
                    self._quad(mention, f"{KG}{prefix}end", self._literal(str(end), XSD + "integer"))
                )
        return [self.ox.Quad(q.subject, q.predicate, q.object, self.raw) for q in quads]

    # --- the graph: derived from the record -----------------------------------------------------------

    def mentions(self) -> list[_Mention]:
        """Every mention of the record, in a stable order."""
        _, rows = self.rows(
            f"""SELECT ?m ?item ?source ?id ?c WHERE {{ GRAPH <{RAW}> {{
              ?m kg:item ?item ; kg:source ?source ; kg:document ?id OPTIONAL {{ ?m kg:confidence ?c }} }} }}"""
        )
        found = [
            _Mention(str(m), f"{source}#{doc}", json.loads(str(item)), float(c) if c is not None else None)
            for m, item, source, doc, c in rows
        ]
        return sorted(found, key=lambda x: (x.document, x.iri))

    def occurrences(self, mentions: list[_Mention] | None = None) -> Iterator[Occurrence]:
        """Every entity name the record mentions, with its document and position there."""
        for mention in self.mentions() if mentions is None else mentions:
            for index, (name, type_, spans) in enumerate(_occurrences(mention)):
                start = _start(spans)
                position = start if start is not None else 1_000_000_000 + index
                yield Occurrence(
                    _key(name, type_), " ".join(name.split()), mention.document, position, mention.iri
                )

    def document_texts(self) -> dict[str, str]:
        """The text of every document the record has it for, by document key (``source#id``)."""
        _, rows = self.rows(
            f"SELECT ?source ?id ?text WHERE {{ GRAPH <{RAW}> {{ ?d a kg:Document ; kg:source ?source ; kg:id ?id ; "
            "kg:text ?text } }"
        )
        return {f"{source}#{doc}": str(text) for source, doc, text in rows}

    def aliases(self) -> dict[str, str]:
        """The alias table the record keeps: normalised alias -> entity name."""
        _, rows = self.rows(
            f"SELECT ?alias ?name WHERE {{ GRAPH <{RAW}> {{ ?e a kg:AliasEntry ; kg:alias ?alias ; kg:name ?name }} }} "
            "ORDER BY ?alias ?name"
        )
        return {str(alias): str(name) for alias, name in rows}

    def rejected(self) -> list[str]:
        """The ids of merges a user undid (``kg split``)."""
        _, rows = self.rows(
            f"SELECT ?id WHERE {{ GRAPH <{RAW}> {{ ?d a kg:Decision ; kg:rejects ?id }} }} ORDER BY ?id"
        )
        return [str(r[0]) for r in rows]

    def settings(self) -> ResolveSettings | None:
        """How the graph is resolved, or None when it is not (names are merged only by the alias table)."""
        for quad in self.store.quads_for_pattern(
            self.ox.NamedNode(RESOLUTION), self.ox.NamedNode(KG + "settings"), None, self.raw
        ):
            return ResolveSettings(**json.loads(str(quad.object.value)))
        return None

    def _set_settings(self, settings: ResolveSettings | None) -> None:
        node = self.ox.NamedNode(RESOLUTION)
        for quad in list(self.store.quads_for_pattern(node, None, None, self.raw)):
            self.store.remove(quad)
        if settings is not None:
            self.store.extend(
                [
                    self._quad(RESOLUTION, RDF + "type", KG + "Resolution", raw=True),
                    self._quad(
                        RESOLUTION,
                        KG + "settings",
                        self._literal(json.dumps(asdict(settings), sort_keys=True)),
                        raw=True,
                    ),
                ]
            )

    def resolve(self, settings: ResolveSettings | None = None) -> int:
        """Resolve the graph's entities (and keep resolving it so as more is loaded); returns the merges."""
        self._set_settings(settings or ResolveSettings())
        return self.rebuild()

    def unresolve(self) -> None:
        """Back to exact names (and the alias table): the graph as if it had never been resolved."""
        self._set_settings(None)
        self.rebuild()

    def split(self, merge_ids: Iterable[str], *, restore: bool = False) -> int:
        """Undo merges by id (``kg explain`` shows them), or with ``restore`` take such a decision back;
        returns the merges of the rebuilt graph."""
        ids = sorted(set(merge_ids))
        if restore:
            known = set(self.rejected())
        else:
            _, rows = self.rows("SELECT ?id WHERE { ?m a kg:Merge ; kg:id ?id }")
            known = {str(r[0]) for r in rows}
        unknown = [i for i in ids if i not in known]
        if unknown:
            what = "undone merge" if restore else "merge of this graph"
            raise InputError(f"no {what} with id {', '.join(unknown)} (knowlm kg explain NAME lists them)")
        for merge_id in ids:
            decision = f"{KG}decision/{merge_id}"
            if restore:
                for quad in list(
                    self.store.quads_for_pattern(self.ox.NamedNode(decision), None, None, self.raw)
                ):
                    self.store.remove(quad)
            else:
                self.store.extend(
                    [
                        self._quad(decision, RDF + "type", KG + "Decision", raw=True),
                        self._quad(decision, KG + "rejects", self._literal(merge_id), raw=True),
                        self._quad(
                            decision, KG + "decidedAt", self._literal(_now(), XSD + "dateTime"), raw=True
                        ),
                    ]
                )
        return self.rebuild()

    def resolution(self, mentions: list[_Mention] | None = None) -> Resolution:
        """The entity resolution of the record as it stands (exact names and aliases when not resolved)."""
        settings = self.settings()
        resolver = settings.resolver() if settings else Resolver(enabled=False)
        return resolver.resolve(self.occurrences(mentions), self.rejected(), self.aliases())

    def rebuild(self) -> int:
        """Derive the graph from the record again; returns the number of merges applied."""
        mentions = self.mentions()
        resolution = self.resolution(mentions)
        graph = _Derived()
        for mention in mentions:
            self._derive(graph, mention, resolution)
        for node, count in graph.support.items():
            graph.quads.append(self._quad(node, KG + "support", self._literal(str(count), XSD + "integer")))
        for node, values in graph.confidences.items():
            if node.startswith(KG + "statement/"):
                graph.quads += [
                    self._quad(
                        node, KG + "maxConfidence", self._literal(f"{max(values):.4f}", XSD + "decimal")
                    ),
                    self._quad(
                        node,
                        KG + "meanConfidence",
                        self._literal(f"{sum(values) / len(values):.4f}", XSD + "decimal"),
                    ),
                ]
        for predicate, labels in graph.relations.items():
            label = min(labels.items(), key=lambda kv: label_rank(*kv))[0]
            graph.quads.append(self._quad(predicate, RDFS + "label", self._literal(label)))
        applied = self._merges(graph, resolution)
        self.store.clear_graph(self.ox.DefaultGraph())
        self.store.extend(graph.quads)
        self.store.flush()
        return applied

    def _entity(self, graph: _Derived, key: NameKey, document: str, resolution: Resolution) -> str:
        canonical = resolution.entity(key, document)
        iri = graph.entities.get(canonical)
        if iri is None:
            iri = graph.entities[canonical] = entity_iri(*canonical)
            graph.quads += [
                self._quad(iri, RDF + "type", KG + "Entity"),
                self._quad(iri, RDFS + "label", self._literal(resolution.labels[canonical])),
            ]
            if resolution.types.get(canonical):
                graph.quads.append(self._quad(iri, KG + "type", self._literal(resolution.types[canonical])))
        return iri

    def _derive(self, graph: _Derived, mention: _Mention, resolution: Resolution) -> None:
        item, doc = mention.item, mention.document
        names = [
            (
                self._entity(graph, _key(name, type_), doc, resolution),
                _key(name, type_),
                " ".join(name.split()),
            )
            for name, type_, _ in _occurrences(mention)
        ]
        for iri, key, label in names:
            graph.quads += [self._quad(iri, KG + "name", self._literal(key[0]))]
            if label != resolution.labels[resolution.entity(key, doc)]:
                graph.quads.append(self._quad(iri, KG + "alias", self._literal(label)))
        if "relation" in item:
            (head, _, _), (tail, _, _) = names
            predicate = relation_iri(item["relation"])
            graph.relations[predicate][" ".join(item["relation"].split())] += 1
            target = f"{KG}statement/{digest(head, predicate, tail)}"
            graph.quads += [
                self._quad(head, predicate, tail),
                self._quad(target, RDF + "type", KG + "Statement"),
                self._quad(target, RDF + "subject", head),
                self._quad(target, RDF + "predicate", predicate),
                self._quad(target, RDF + "object", tail),
            ]
            touched = [target, head, tail]
        elif "arguments" in item or "trigger" in item:
            target = f"{KG}event/{digest(mention.iri)}"
            graph.quads += [
                self._quad(target, RDF + "type", KG + "Event"),
                self._quad(target, KG + "type", self._literal(item["type"])),
            ]
            if item.get("trigger"):
                graph.quads.append(self._quad(target, KG + "trigger", self._literal(item["trigger"])))
            for argument, (iri, _, _) in zip(item.get("arguments", []), names, strict=True):
                graph.quads.append(self._quad(target, role_iri(argument["role"]), iri))
            touched = [target, *(iri for iri, _, _ in names)]
        else:
            touched = [names[0][0]]
        for node in dict.fromkeys(touched):
            graph.quads.append(self._quad(mention.iri, KG + "of", node))
            graph.support[node] += 1
            if mention.confidence is not None:
                graph.confidences[node].append(mention.confidence)

    def _merges(self, graph: _Derived, resolution: Resolution) -> int:
        """The merges as data: rule, score, the two names, evidence, whether a user undid it, its entity."""
        applied = 0
        for merge in resolution.merges:
            node = f"{KG}merge/{merge.id}"
            entity = graph.entities.get(resolution.canonical.get(merge.right, merge.right))
            graph.quads += [
                self._quad(node, RDF + "type", KG + "Merge"),
                self._quad(node, KG + "id", self._literal(merge.id)),
                self._quad(node, KG + "rule", self._literal(merge.rule)),
                self._quad(node, KG + "score", self._literal(f"{merge.score:.3f}", XSD + "decimal")),
                self._quad(node, KG + "leftName", self._literal(merge.left[0])),
                self._quad(node, KG + "leftType", self._literal(merge.left[1])),
                self._quad(node, KG + "rightName", self._literal(merge.right[0])),
                self._quad(node, KG + "rightType", self._literal(merge.right[1])),
                self._quad(
                    node,
                    KG + "evidence",
                    self._literal(json.dumps(merge.evidence, ensure_ascii=False, sort_keys=True)),
                ),
                self._quad(node, KG + "status", self._literal("rejected" if merge.rejected else "applied")),
            ]
            if merge.document is not None:
                graph.quads.append(self._quad(node, KG + "inDocument", self._literal(merge.document)))
            if entity is not None and not merge.rejected:
                graph.quads.append(self._quad(node, KG + "entity", entity))
            applied += not merge.rejected
        return applied

    def _quad(self, s: str, p: str, o: Any, *, raw: bool = False) -> Any:
        ox = self.ox
        obj = ox.NamedNode(o) if isinstance(o, str) else o
        return ox.Quad(ox.NamedNode(s), ox.NamedNode(p), obj, self.raw if raw else ox.DefaultGraph())

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
            return self.store.query(head + sparql, use_default_graph_as_union=True)
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

    def neighbourhood(
        self, name: str, *, limit: int = 200, min_confidence: float = 0.0
    ) -> list[dict[str, Any]]:
        """The relation statements in which an entity named ``name`` is head or tail, most supported first (of
        highest confidence at least ``min_confidence`` when that is above 0)."""
        found = self.entities(name)
        if not found:
            return []
        values = " ".join(f"<{iri}>" for iri in found)
        _, rows = self.rows(
            f"""SELECT ?head ?relation ?tail ?support ?confidence WHERE {{
              VALUES ?e {{ {values} }}
              {{ ?s rdf:subject ?e }} UNION {{ ?s rdf:object ?e }}
              ?s a kg:Statement ; rdf:subject ?h ; rdf:predicate ?p ; rdf:object ?t ; kg:support ?support .
              OPTIONAL {{ ?s kg:maxConfidence ?confidence }}
              ?h rdfs:label ?head . ?t rdfs:label ?tail . ?p rdfs:label ?relation .
              {_confidence_filter(min_confidence)}
            }} ORDER BY DESC(?support) ?head ?relation ?tail LIMIT {int(limit)}"""
        )
        return [
            {"head": h, "relation": r, "tail": t, "support": int(s or 0), "confidence": _number(c)}
            for h, r, t, s, c in rows
        ]

    def triples(self, *, min_confidence: float = 0.0) -> Iterator[dict[str, Any]]:
        """Every relation statement (its IRI) with its entities (for exports)."""
        _, rows = self.rows(
            f"""SELECT ?s ?h ?p ?t ?relation ?support ?confidence WHERE {{
              ?s a kg:Statement ; rdf:subject ?h ; rdf:predicate ?p ; rdf:object ?t ; kg:support ?support .
              OPTIONAL {{ ?s kg:maxConfidence ?confidence }}
              ?p rdfs:label ?relation {_confidence_filter(min_confidence)} }} ORDER BY ?h ?p ?t"""
        )
        for s, h, p, t, relation, support, confidence in rows:
            yield {
                "statement": s,
                "head": h,
                "predicate": p,
                "tail": t,
                "relation": relation,
                "support": int(support or 0),
                "confidence": _number(confidence),
            }

    def explain(self, name: str) -> list[dict[str, Any]]:
        """Each entity named ``name`` (by any of its names): its label, type, names, surface forms, support, the
        merges that made it (rule, score, the two names, evidence, id) and the merges of its names a user
        undid."""
        explained = []
        for iri in self.entities(name):
            _, info = self.rows(
                f"""SELECT ?label ?type ?support WHERE {{ <{iri}> rdfs:label ?label
                  OPTIONAL {{ <{iri}> kg:type ?type }} OPTIONAL {{ <{iri}> kg:support ?support }} }}"""
            )
            label, type_, support = info[0] if info else (None, None, None)
            _, names = self.rows(f"SELECT DISTINCT ?n WHERE {{ <{iri}> kg:name ?n }} ORDER BY ?n")
            _, forms = self.rows(f"SELECT DISTINCT ?a WHERE {{ <{iri}> kg:alias ?a }} ORDER BY ?a")
            own = {str(n[0]) for n in names}
            _, merges = self.rows(
                """SELECT ?m ?status ?entity WHERE { ?m a kg:Merge ; kg:status ?status ; kg:leftName ?l ;
                  kg:rightName ?r OPTIONAL { ?m kg:entity ?entity } } ORDER BY ?m"""
            )
            chosen = [
                m for m, status, entity in merges
                if entity == iri or (status == "rejected" and self._merge_names(m) & own)
            ]  # fmt: skip
            explained.append(
                {
                    "iri": iri,
                    "label": label,
                    "type": type_ or "",
                    "support": int(support or 0),
                    "names": sorted(own),
                    "surface_forms": [str(f[0]) for f in forms],
                    "merges": [self._merge(str(m)) for m in chosen],
                }
            )
        return explained

    def _merge_names(self, node: str | None) -> set[str]:
        _, rows = self.rows(f"SELECT ?l ?r WHERE {{ <{node}> kg:leftName ?l ; kg:rightName ?r }}")
        return {str(v) for row in rows for v in row}

    def _merge(self, node: str) -> dict[str, Any]:
        _, rows = self.rows(
            f"""SELECT ?id ?rule ?score ?ln ?lt ?rn ?rt ?evidence ?status ?doc WHERE {{ <{node}> kg:id ?id ;
              kg:rule ?rule ; kg:score ?score ; kg:leftName ?ln ; kg:leftType ?lt ; kg:rightName ?rn ;
              kg:rightType ?rt ; kg:evidence ?evidence ; kg:status ?status OPTIONAL {{ <{node}> kg:inDocument ?doc }} }}"""
        )
        id_, rule, score, ln, lt, rn, rt, evidence, status, doc = rows[0]
        return {
            "id": id_,
            "rule": rule,
            "score": _number(score),
            "left": {"name": ln, "type": lt},
            "right": {"name": rn, "type": rt},
            "document": doc,
            "evidence": json.loads(evidence or "{}"),
            "status": status,
        }

    def evidence(self, name: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Where an entity named ``name`` is mentioned: each mention's document text, item and the character
        spans of the item's names there (the sentence that states each relation); an item stored without
        offsets is placed at the first occurrence of its names."""
        found = self.entities(name)
        if not found:
            return []
        values = " ".join(f"<{iri}>" for iri in found)
        _, rows = self.rows(
            f"""SELECT DISTINCT ?m ?item ?id ?source ?text WHERE {{ VALUES ?e {{ {values} }} ?m kg:of ?e ;
              kg:item ?item ; kg:document ?id ; kg:source ?source OPTIONAL {{ ?m kg:in ?d . ?d kg:text ?text }}
            }} ORDER BY ?source ?id ?m LIMIT {int(limit)}"""
        )
        mentions = []
        for _, item, doc, source, text in rows:
            data = json.loads(item or "{}")
            spans = []
            for key, named in (("spans", "text"), ("head_spans", "head"), ("tail_spans", "tail")):
                start = _start(data.get(key))
                said = data.get(named)
                if start is not None:
                    spans.append((start, data[key][0][1], key))
                elif isinstance(said, str) and said and text and said in text:
                    found_at = text.index(said)  # an output without offsets: its first occurrence
                    spans.append((found_at, found_at + len(said), key))
            mentions.append({"document": doc, "source": source, "text": text, "item": data, "spans": spans})
        return mentions

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


def _confidence_filter(min_confidence: float) -> str:
    """A SPARQL filter on ``?confidence`` (a statement's highest), empty at 0 (statements without one pass)."""
    check_threshold(min_confidence)
    return f"FILTER(BOUND(?confidence) && ?confidence >= {min_confidence!r})" if min_confidence > 0 else ""


def _number(value: str | None) -> float | None:
    return None if value is None else float(value)


def _plain(term: Any) -> str | None:
    return None if term is None else str(term.value)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xsd_time(value: str | None) -> str | None:
    """A manifest time (``2026-12-02T08:57:00+0000``) as an xsd:dateTime in UTC."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None

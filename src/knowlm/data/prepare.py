"""`knowlm data prepare`: raw corpora -> cleaned, deduplicated, sentence-packed token datasets.

Per input file: documents are read in the main process, sent in batches to worker processes that clean,
split into sentences, tokenize, score repetition, compute MinHash LSH band keys and pack samples; the main
process takes the results back in order, decides duplicates (one index across all sources) and appends
samples to the file's part dataset. A finished part is marked done together with its counters and the
hashes and band keys of the documents it kept, so a rerun after a crash skips it and restores the dedup
state: the output is the same as an uninterrupted run's, for any number of workers. At the end the parts
of each source are merged into ``OUT/NAME.bin/.idx`` and ``OUT/manifest.json`` records weights, counters
and the tokenizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.config import PrepareConfig
from knowlm.data import indexed
from knowlm.data.chunk import chunk_document
from knowlm.data.clean import (
    Cleaner,
    CleanRules,
    Deduplicator,
    LSHBands,
    MinHasher,
    dup_ngram_fractions,
    load_blocklist,
    text_hash,
)
from knowlm.data.sentences import split_sentences
from knowlm.data.sources import SourceSpec, parse_source, read_documents
from knowlm.errors import InputError, KnowLMError
from knowlm.io import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WORKER_START_TIMEOUT = 600  # seconds for every worker to load the tokenizer
SHINGLE = 5


@dataclass(frozen=True)
class Settings:
    """What a worker needs (picklable)."""

    rules: CleanRules
    seq_length: int
    bos_id: int | None
    eos_id: int | None
    keep_newlines: bool
    extend_backward: bool
    dedup: str
    num_perm: int
    threshold: float
    dtype: str


@dataclass
class DocResult:
    reason: str | None
    changes: list[str]
    digest: int = 0
    bands: np.ndarray | None = None  # LSH band keys (near-duplicate dedup)
    samples: list[np.ndarray] = dataclasses.field(default_factory=list)
    tokens: int = 0
    sentences: int = 0
    cut: int = 0


_worker: dict[str, Any] = {}


def _init_worker(tokenizer: Any, settings: Settings, ready: Any = None) -> None:
    """Set up `process_batch` with a `tokenizers.Tokenizer`; in a worker process ``tokenizer`` is its JSON
    file and ``ready`` a barrier that the main process waits at until every worker is set up."""
    _worker.clear()
    try:
        if ready is not None:  # one thread per worker process: the processes are the parallelism
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        if isinstance(tokenizer, str):
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(tokenizer)
        _worker.update(
            tokenizer=tokenizer,
            settings=settings,
            cleaner=Cleaner(settings.rules),
            minhasher=MinHasher(settings.num_perm, SHINGLE) if settings.dedup == "near" else None,
            lsh=LSHBands(settings.threshold, settings.num_perm) if settings.dedup == "near" else None,
        )
    except Exception as e:  # raised by the first batch: a failing Pool initializer restarts workers forever
        if ready is None:
            raise
        _worker["error"] = f"{type(e).__name__}: {e}"
    if ready is not None:
        gc.freeze()  # see prepare()
        # the barrier is broken once all workers were ready: one the Pool restarts later goes straight on
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait()


def process_batch(texts: list[str]) -> list[DocResult]:
    """Clean, split, tokenize and pack a batch of documents (in a worker, or in-process)."""
    if "error" in _worker:
        raise KnowLMError(f"a worker process could not start: {_worker['error']}")
    s: Settings = _worker["settings"]
    results: list[DocResult] = []
    kept: list[tuple[DocResult, int, int]] = []  # result, first sentence, sentence count
    sentences: list[str] = []
    for text in texts:
        cleaned, reason, changes = _worker["cleaner"].clean(text)
        result = DocResult(reason, changes)
        results.append(result)
        if cleaned is None:
            continue
        result.digest = text_hash(cleaned)
        pieces = split_sentences(cleaned, keep_newlines=s.keep_newlines)
        kept.append((result, len(sentences), len(pieces)))
        sentences.extend(pieces)
    encodings = (
        _worker["tokenizer"].encode_batch_fast(sentences, add_special_tokens=False) if sentences else []
    )
    sentence_ids = [e.ids for e in encodings]
    ends = np.zeros(len(sentence_ids) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, sentence_ids), np.int64, len(sentence_ids)), out=ends[1:])
    lengths = np.array([ends[first + count] - ends[first] for _, first, count in kept], dtype=np.int64)
    flat = np.fromiter(chain.from_iterable(sentence_ids), dtype=np.uint64, count=int(ends[-1]))
    # repetition and MinHash for the whole batch at once (vectorized over all of its tokens)
    check_repeats = s.rules.max_dup_ngrams < 1
    fractions = dup_ngram_fractions(flat, lengths, s.rules.ngram) if check_repeats else None
    minhasher = _worker["minhasher"]
    bands = _worker["lsh"].keys(minhasher.signatures(flat, lengths)) if minhasher is not None else None
    for k, (result, first, count) in enumerate(kept):
        if fractions is not None and fractions[k] > s.rules.max_dup_ngrams:
            result.reason = "repeated_ngrams"
            continue
        if not lengths[k]:
            result.reason = "no_tokens"
            continue
        if bands is not None:
            result.bands = bands[k]
        samples, result.cut = chunk_document(
            sentence_ids[first : first + count],
            s.seq_length,
            bos_id=s.bos_id,
            eos_id=s.eos_id,
            extend_backward=s.extend_backward,
        )
        result.samples = [np.asarray(x, dtype=s.dtype) for x in samples]
        result.tokens, result.sentences = int(lengths[k]), count
    return results


def _batches(docs: Iterable[Any], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for doc in docs:
        batch.append(doc.text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _in_order(pool: Any, batches: Iterator[list[str]], depth: int) -> Iterator[list[DocResult]]:
    """Results of ``process_batch`` in input order, with at most ``depth`` batches in flight (bounded memory:
    `Pool.imap` would read the whole input ahead)."""
    if pool is None:
        yield from map(process_batch, batches)
        return
    pending: deque[Any] = deque()
    for batch in batches:
        pending.append(pool.apply_async(process_batch, (batch,)))
        if len(pending) >= depth:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _fingerprint(
    config: PrepareConfig, sources: list[SourceSpec], tok: dict[str, Any], rules: CleanRules
) -> str:
    ignore = {"out", "workers", "batch_docs", "overwrite", "source", "blocklist"}
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ignore}
    files = [
        [
            s.name,
            s.weight,
            s.text_mode,
            s.field,
            s.template,
            [[str(p), st.st_size, st.st_mtime_ns] for p in s.files for st in [p.stat()]],
        ]
        for s in sources
    ]
    blob = json.dumps([settings, files, tok, dataclasses.asdict(rules)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, indent=1, ensure_ascii=False)


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def prepare(config: PrepareConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the preparation; returns the manifest (also written to ``OUT/manifest.json``)."""
    from tqdm import tqdm

    from knowlm.data.tokenizer import describe, load_tokenizer

    started = time.perf_counter()
    config.validate()
    defaults = {"field": config.field, "template": config.template, "text_mode": config.text_mode}
    sources = [parse_source(spec, defaults) for spec in config.source]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"source names must differ, got {', '.join(names)} (name them: NAME=GLOB)")
    for source in sources:
        source.expand()
    rules = CleanRules(
        normalize=config.normalize,
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        max_symbol_ratio=config.max_symbol_ratio,
        max_repeated_lines=config.max_repeated_lines,
        max_dup_ngrams=config.max_dup_ngrams,
        blocklist=load_blocklist(config.blocklist) if config.blocklist else (),
    )
    tokenizer = load_tokenizer(config.tokenizer)
    tok_info = describe(tokenizer, config.tokenizer)
    dtype = np.dtype(indexed.dtype_for(tok_info["vocab_size"]))
    for flag, token_id in (("--add-bos", tok_info["bos_id"]), ("--add-eos", tok_info["eos_id"])):
        if getattr(config, flag[2:].replace("-", "_")) and token_id is None:
            raise InputError(f"{flag}: the tokenizer has no such token; use --no-{flag[2:]}")
    fingerprint = _fingerprint(config, sources, tok_info, rules)

    out = Path(config.out)  # type: ignore[arg-type]
    work = out / ".work"
    manifest_path = out / MANIFEST
    if config.overwrite:
        shutil.rmtree(work, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
    if manifest_path.is_file():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("fingerprint") == fingerprint and all(
            indexed.exists(out / name) for name in manifest["sources"]
        ):
            log.warning("%s already holds this preparation; nothing to do", out)
            return manifest
        raise InputError(
            f"{out} holds a dataset prepared with other settings or files; use --overwrite or another --out"
        )
    state_path = work / "settings.json"
    if state_path.is_file():
        if json.loads(state_path.read_text(encoding="utf-8")).get("fingerprint") != fingerprint:
            raise InputError(
                f"{work} holds an unfinished preparation with other settings or files; rerun with the same "
                "settings to continue it, or add --overwrite to start over"
            )
        log.warning("continuing the unfinished preparation in %s", work)
    work.mkdir(parents=True, exist_ok=True)
    _write_json(state_path, {"fingerprint": fingerprint})
    settings = Settings(
        rules=rules,
        seq_length=config.seq_length,
        bos_id=tok_info["bos_id"] if config.add_bos else None,
        eos_id=tok_info["eos_id"] if config.add_eos else None,
        keep_newlines=config.keep_newlines,
        extend_backward=config.extend_backward,
        dedup=config.dedup,
        num_perm=config.dedup_num_perm,
        threshold=config.dedup_threshold,
        dtype=dtype.name,
    )
    dedup = Deduplicator(config.dedup, config.dedup_threshold, config.dedup_num_perm)
    metadata = {**tok_info, "seq_length": config.seq_length, "fingerprint": fingerprint}
    counters: dict[str, Counter[str]] = {s.name: Counter() for s in sources}
    parts: dict[str, list[Path]] = {s.name: [] for s in sources}
    jobs = [(source, path) for source in sources for path in source.files]
    pool = None
    if config.workers > 1:  # the workers load the tokenizer from a file; one process uses it as it is
        tokenizer_file = work / "tokenizer.json"
        tokenizer.backend_tokenizer.save(str(tokenizer_file))
        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(config.workers + 1)
        pool = context.Pool(config.workers, _init_worker, (str(tokenizer_file), settings, ready))
        try:
            ready.wait(timeout=WORKER_START_TIMEOUT)
        except threading.BrokenBarrierError:
            pool.terminate()
            raise KnowLMError(
                f"the {config.workers} worker processes did not start within {WORKER_START_TIMEOUT} s; "
                "try --workers 1"
            ) from None
        ready.abort()  # from now on the barrier lets any (restarted) worker through at once
    else:
        _init_worker(tokenizer.backend_tokenizer, settings)
    set_up = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="file", disable=not progress, desc="preparing")
    # the cyclic garbage collector need not walk the set-up objects (about 240k with Gemma's tokenizer) again
    # and again while batches allocate millions of small objects: a sixth of the processing time otherwise
    gc.freeze()
    try:
        for number, (source, path) in enumerate(jobs):
            part = work / f"part-{number:05d}"
            parts[source.name].append(part)
            done = work / f"part-{number:05d}.done.json"
            if done.is_file():
                counters[source.name].update(json.loads(done.read_text(encoding="utf-8"))["counters"])
                bands = work / f"part-{number:05d}.bands.npy"
                dedup.add(
                    np.load(work / f"part-{number:05d}.hashes.npy"),
                    np.load(bands) if bands.exists() else None,
                )
                bar.update(1)
                continue
            bar.set_postfix_str(f"{source.name}: {path.name}")
            file_counters = _prepare_file(
                path, source, part, pool, config, dtype, metadata, dedup, work / f"part-{number:05d}"
            )
            _write_json(done, {"file": str(path), "counters": file_counters})
            counters[source.name].update(file_counters)
            bar.update(1)
    finally:
        gc.unfreeze()
        bar.close()
        if pool is not None:
            pool.terminate()

    processed = time.perf_counter()
    manifest = _finish(out, sources, parts, counters, metadata, dtype, fingerprint)
    finished = time.perf_counter()
    manifest["seconds"] = {  # of the run that finished the preparation
        "setup": round(set_up - started, 2),
        "process": round(processed - set_up, 2),
        "merge": round(finished - processed, 2),
    }
    _write_json(out / MANIFEST, manifest)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _prepare_file(
    path: Path,
    source: SourceSpec,
    part: Path,
    pool: Any,
    config: PrepareConfig,
    dtype: np.dtype[Any],
    metadata: dict[str, Any],
    dedup: Deduplicator,
    stem: Path,
) -> Counter[str]:
    counters: Counter[str] = Counter()
    hashes: list[int] = []
    bands: list[np.ndarray] = []
    docs = read_documents(path, source, counters)
    with indexed.IndexedDatasetWriter(part, dtype, {**metadata, "file": str(path)}) as writer:
        for results in _in_order(pool, _batches(docs, config.batch_docs), 2 * config.workers):
            for r in results:
                counters["documents"] += 1
                for change in r.changes:
                    counters[f"changed.{change}"] += 1
                reason = r.reason or dedup.check(r.digest, r.bands)
                if reason:
                    counters[f"dropped.{reason}"] += 1
                    continue
                hashes.append(r.digest)
                if r.bands is not None:
                    bands.append(r.bands)
                for sample in r.samples:
                    writer.add(sample)
                writer.end_document()
                counters["kept"] += 1
                counters["samples"] += len(r.samples)
                counters["tokens"] += sum(len(x) for x in r.samples)
                counters["sentences"] += r.sentences
                counters["sentences_cut"] += r.cut
    _save_array(stem.with_name(stem.name + ".hashes.npy"), np.asarray(hashes, dtype=np.uint64))
    if bands:
        _save_array(stem.with_name(stem.name + ".bands.npy"), np.stack(bands))
    return counters


def _finish(
    out: Path,
    sources: list[SourceSpec],
    parts: dict[str, list[Path]],
    counters: dict[str, Counter[str]],
    metadata: dict[str, Any],
    dtype: np.dtype[Any],
    fingerprint: str,
) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for c in counters.values():
        total.update(c)
    empty = [s.name for s in sources if not counters[s.name]["samples"]]
    if empty:
        detail = "; ".join(f"{name}: {_summary(counters[name])}" for name in empty)
        raise InputError(
            f"no samples from source(s) {', '.join(empty)} ({detail}); check the files, --field/"
            "--template and the cleaning limits"
        )
    manifest: dict[str, Any] = {
        "version": 1,
        "fingerprint": fingerprint,
        **{
            k: metadata[k]
            for k in ("tokenizer", "tokenizer_ref", "vocab_size", "bos_id", "eos_id", "seq_length")
        },
        "dtype": dtype.name,
        "sources": {},
        "counters": dict(sorted(total.items())),
    }
    for source in sources:
        with indexed.IndexedDatasetWriter(
            out / source.name, dtype, {**metadata, "source": source.name}
        ) as writer:
            for part in parts[source.name]:
                writer.add_dataset(indexed.IndexedDataset(part))
        c = counters[source.name]
        manifest["sources"][source.name] = {
            "prefix": source.name,
            "weight": source.weight,
            "files": [str(p) for p in source.files],
            "documents": c["kept"],
            "samples": c["samples"],
            "tokens": c["tokens"],
            "counters": dict(sorted(c.items())),
        }
    return manifest


def _summary(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "no documents read"

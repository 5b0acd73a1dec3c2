"""Run one extraction over many input files: in this process (``local``) or on a Ray cluster (``ray``: Ray Data
reads and decodes the files, a pool of engine actors extracts). Both hand the same batches to the same
`Extractor` and write the same shard files, so results do not depend on the runner."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.batch.shards import Manifest, Shard, decode_records, list_shards, read_shard
from knowlm.config import ExtractConfig, ModelConfig, SamplingParams, records_per_call
from knowlm.errors import InputError, KnowLMError, MissingDependencyError
from knowlm.ie.instructions import Instructions, instructions_from_records, load_instructions
from knowlm.io import ResumableJsonlWriter

RUNNERS = ("local", "ray")
RESOLVED_OPTIONS = ("schema_file", "instructions", "instructions_from")
"""Options naming files: the job carries what they hold (schema, instruction texts), not the paths."""
WORKER_NICENESS = "RAY_worker_niceness"
READERS_PER_ACTOR = 16  # read-and-decode tasks: one per this many engine actors (at least one)


def extract_records(
    extractor: Any, records: list[dict[str, Any]], with_outputs: bool
) -> list[dict[str, Any]]:
    """Extract a batch of ``{"id", "text"}`` records into output records; a record that fails on its own (or
    came in with an ``"error"``) gets an error record, the others go on."""
    good = [r for r in records if "text" in r]
    errors = {id(r): r.get("error", "") for r in records}
    try:
        results = dict(
            zip((id(r) for r in good), extractor.extract_many([r["text"] for r in good]), strict=True)
        )
    except KnowLMError:  # find the record at fault: one by one
        results = {}
        for r in good:
            try:
                results[id(r)] = extractor.extract(r["text"])
            except KnowLMError as exc:
                errors[id(r)] = str(exc)
    out = []
    for r in records:
        if id(r) in results:
            out.append({"id": r["id"], "text": r["text"], **results[id(r)].to_dict(outputs=with_outputs)})
        else:
            out.append({"id": r["id"], "error": errors[id(r)]})
    return out


@dataclass
class Job:
    """Everything an extraction worker needs, resolved on the driver (files named in the options may not
    exist on the other nodes of a cluster)."""

    model: ModelConfig
    extract: ExtractConfig
    params: SamplingParams
    with_outputs: bool = False
    batch_size: int = 8
    text_field: str = "text"
    id_field: str = "id"
    schema: Any = None
    instructions: Instructions | None = None

    def __post_init__(self) -> None:
        from knowlm.ie.extractor import resolve_schema

        if self.schema is None:
            self.schema = resolve_schema(self.extract)
        if self.instructions is None and self.extract.instructions:
            self.instructions = load_instructions(self.extract.instructions)
        elif self.instructions is None and self.extract.instructions_from:
            self.instructions = instructions_from_records(self.extract.instructions_from)

    def settings(self) -> dict[str, Any]:
        """What decides the answers (kept in the run manifest; the runner and the number of workers do not)."""
        options = dataclasses.asdict(self.extract)
        options["schema"] = [dataclasses.asdict(item) for item in self.schema.items]
        for key in RESOLVED_OPTIONS:
            options.pop(key)
        model = {
            k: v for k, v in dataclasses.asdict(self.model).items() if k not in ("threads", "batch_size")
        }
        return {
            "model": model,
            "extract": options,
            "instructions": self.instructions,
            "sampling": dataclasses.asdict(self.params),
            "outputs": self.with_outputs,
            "fields": [self.text_field, self.id_field],
        }

    def extractor(self, engine: Any = None) -> Any:
        from knowlm.engines import create_engine
        from knowlm.ie.extractor import Extractor

        resolved = dataclasses.replace(
            self.extract, schema_file=None, instructions=None, instructions_from=None
        )
        return Extractor.from_config(
            engine or create_engine(self.model),
            resolved,
            schema=self.schema,
            params=self.params,
            instruction_texts=self.instructions,
        )


@dataclass
class RunReport:
    """What a run did: shards written now and skipped as already complete, records, bad records, per-node
    record counts (Ray) and wall time."""

    shards: int = 0
    skipped: int = 0
    records: int = 0
    bad: int = 0
    nodes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "nodes": dict(self.nodes)}


Progress = Callable[[dict[str, Any]], None]
"""Called after each batch with {"shard", "records", "bad", "node", "pid"}."""


class ShardWriter:
    """Writes the output records of shards that arrive in order, finishing (renaming) each when the next
    begins; shards with no records still get their (empty) file."""

    def __init__(self, out: Path, pending: list[Shard], report: RunReport) -> None:
        self.out, self.pending, self.report = out, list(pending), report
        self.writer: ResumableJsonlWriter | None = None
        self.current: str | None = None

    def write(self, shard: str, records: list[dict[str, Any]]) -> None:
        while self.current != shard:
            self._next()
        assert self.writer is not None
        for record in records:
            self.writer.write(record)
        self.report.records += len(records)
        self.report.bad += sum(1 for r in records if "error" in r)

    def _next(self) -> None:
        self._finish_current()
        if not self.pending:
            raise RuntimeError(f"records arrived for a shard that is not pending: {self.current}")
        self.current = self.pending.pop(0).name
        self.writer = ResumableJsonlWriter(self.out / self.current, resume=False)

    def _finish_current(self) -> None:
        if self.writer is not None:
            self.writer.finish()
            self.report.shards += 1
            self.writer = None

    def finish(self) -> None:
        """Finish the current shard and write the (empty) files of shards no records arrived for."""
        while self.pending:
            self._next()
        self._finish_current()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plan(input_spec: str, out: Path, job: Job) -> tuple[Any, list[Shard], list[Shard], Manifest]:
    """(filesystem, all shards, pending shards, manifest) for a run of ``job`` over ``input_spec`` into ``out``."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out}: expected a directory for a sharded run, found a file")
    filesystem, shards = list_shards(input_spec)
    manifest = Manifest(out, job.settings())
    pending = [s for s in shards if not (out / s.name).is_file()]
    return filesystem, shards, pending, manifest


def run_local(
    input_spec: str, out: Path, job: Job, *, engine: Any = None, progress: Progress | None = None
) -> RunReport:
    """Extract every pending shard in this process, batch by batch."""
    start = time.monotonic()
    filesystem, shards, pending, manifest = plan(input_spec, out, job)
    report = RunReport(skipped=len(shards) - len(pending))
    manifest.save(shards=len(shards), finished=None)
    extractor = job.extractor(engine) if pending else None
    writer = ShardWriter(out, pending, report)
    try:
        for shard in pending:
            records = decode_records(
                shard.path,
                read_shard(filesystem, shard.path),
                text_field=job.text_field,
                id_field=job.id_field,
            )
            writer.write(shard.name, [])
            step = records_per_call(job.batch_size)
            for begin in range(0, len(records), step):
                done = extract_records(extractor, records[begin : begin + step], job.with_outputs)
                writer.write(shard.name, done)
                report.nodes["local"] += len(done)
                _tell(progress, shard.name, done, "local", os.getpid())
        writer.finish()
    finally:
        writer.close()
    report.seconds = time.monotonic() - start
    manifest.save(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), last_run=report.to_dict())
    return report


def _tell(progress: Progress | None, shard: str, done: list[dict[str, Any]], node: str, pid: int) -> None:
    if progress is not None:
        bad = sum(1 for r in done if "error" in r)
        progress({"shard": shard, "records": len(done), "bad": bad, "node": node, "pid": pid})


class ExtractActor:
    """A Ray Data actor holding one engine; each call gets rows that are each one batch of one shard, exactly
    the batches the local runner makes, so the engine sees the same prompts together."""

    def __init__(self, job: Job) -> None:
        import ray

        self.job = job
        self.extractor = job.extractor()
        self.node = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        done = [
            json.dumps(
                extract_records(self.extractor, json.loads(rows), self.job.with_outputs), ensure_ascii=False
            )
            for rows in batch["records"]
        ]
        return {
            "shard": list(batch["shard"]),
            "records": done,
            "node": [self.node] * len(done),
            "pid": [self.pid] * len(done),
        }


def _decode_file(row: dict[str, Any], *, names: dict[str, str], job: Job) -> list[dict[str, Any]]:
    """Ray Data flat_map: one input file's bytes -> its records in batches (`records_per_call`), each batch one
    row of JSON text (the results' nested shapes differ from record to record, which columnar blocks cannot
    hold as such). A file with no records still gets a row, so its (empty) output is written."""
    records = decode_records(row["path"], row["bytes"], text_field=job.text_field, id_field=job.id_field)
    size = records_per_call(job.batch_size)
    batches = [records[i : i + size] for i in range(0, len(records), size)] or [[]]
    return [{"shard": names[row["path"]], "records": json.dumps(b, ensure_ascii=False)} for b in batches]


@dataclass
class ActorPool:
    """The engine actors of a Ray run: how many (None: as many as the cluster's CPUs, or GPUs, fit) and what
    each reserves."""

    num_actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0

    def size(self, resources: dict[str, float]) -> int:
        if self.num_actors is not None:
            return self.num_actors
        fits = [resources.get("CPU", 1) // max(self.cpus_per_actor, 1e-9)]
        if self.gpus_per_actor:
            fits.append(resources.get("GPU", 0) // self.gpus_per_actor)
        return max(1, int(min(fits)))


def run_ray(
    input_spec: str,
    out: Path,
    job: Job,
    *,
    address: str | None = None,
    pool: ActorPool | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Extract every pending shard on Ray: the files are read and decoded by Ray Data tasks, extraction runs
    in a pool of engine actors, and the driver writes each shard's records as they stream back in order. A
    crashed actor is restarted and its batches retried by Ray; an interrupted run is resumed by rerunning it
    (complete shards are kept). Without ``address`` (and no Ray running in this process) a local Ray starts
    and stops with the run."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("--runner ray needs Ray Data: pip install 'knowlm[scale]'") from None

    start = time.monotonic()
    filesystem, shards, pending, manifest = plan(input_spec, out, job)
    report = RunReport(skipped=len(shards) - len(pending))
    manifest.save(shards=len(shards), finished=None)
    started_here = bool(pending) and not ray.is_initialized()
    if started_here:
        start_ray(address)
    writer = ShardWriter(out, pending, report)
    try:
        if pending:
            for row in _dataset(ray, filesystem, pending, job, pool or ActorPool()).iter_rows():
                done = json.loads(row["records"])
                writer.write(row["shard"], done)
                report.nodes[row["node"]] += len(done)
                _tell(progress, row["shard"], done, row["node"], int(row["pid"]))
        writer.finish()
    finally:
        writer.close()
        if started_here:
            ray.shutdown()
    report.seconds = time.monotonic() - start
    manifest.save(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), last_run=report.to_dict())
    return report


def start_ray(address: str | None = None, **options: Any) -> None:
    """``ray.init`` for extraction runs. A Ray started here runs its workers at normal priority: Ray's
    default (niceness 15) lets its own bookkeeping preempt the engine actors, and llama.cpp's threads wait
    for each other, so every preemption stalls the whole engine (1.3x slower on 2 cores). Nodes started with
    `ray start` take the same setting from ``RAY_worker_niceness=0`` in their environment."""
    import ray

    previous = os.environ.get(WORKER_NICENESS)
    os.environ[WORKER_NICENESS] = previous or "0"  # read by the raylet a Ray started here spawns
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, **options)
    finally:
        if previous is None:
            del os.environ[WORKER_NICENESS]


def _dataset(ray: Any, filesystem: Any, pending: list[Shard], job: Job, pool: ActorPool) -> Any:
    """The Ray Data pipeline: read the files, decode them into batches, extract in the actor pool."""
    if job.model.engine in ("auto", "llamacpp") and job.model.threads is None:
        threads = max(1, int(pool.cpus_per_actor))
        job = dataclasses.replace(job, model=dataclasses.replace(job.model, threads=threads))
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # shards stream back in order, records in input order
    # one block per batch row: a file's batches spread over the actors and come back as each is done
    # (a block of a whole file would go to one actor, and its results only once the file is finished)
    context.target_max_block_size = 1
    names = {s.path: s.name for s in pending}
    # reading and decoding reserve no CPU: the engine actors may hold all of them, and would otherwise wait
    # forever for input that cannot be read. They are thousands of times faster than extraction, so a few
    # tasks feed many actors; one task per file would start a Python worker per file at once, which on a
    # small machine delays the actors' start by seconds and takes CPU from the engines.
    actors = pool.size(ray.cluster_resources())
    readers = ray.data.TaskPoolStrategy(size=max(1, actors // READERS_PER_ACTOR))
    paths = [s.path for s in pending]
    data = ray.data.read_binary_files(
        paths, include_paths=True, filesystem=filesystem, num_cpus=0, concurrency=readers.size
    )
    data = data.flat_map(_decode_file, fn_kwargs={"names": names, "job": job}, num_cpus=0, compute=readers)
    return data.map_batches(
        ExtractActor,
        fn_constructor_kwargs={"job": job},
        batch_size=1,  # one row = one batch of one shard
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),
        num_cpus=pool.cpus_per_actor,
        num_gpus=pool.gpus_per_actor or None,
    )  # Ray Data restarts a crashed actor and retries its unfinished batches (max_restarts=-1 by default)

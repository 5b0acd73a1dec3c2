"""Corpus-scale extraction inputs and outputs: input files (local paths, globs, pyarrow URIs) become shards,
each shard's records go to one output file, and a run manifest keeps reruns consistent.

A shard is one input file. Its output ``OUT/<relative path>.jsonl`` is written to ``.partial`` and renamed
once complete, so a rerun skips complete shards and redoes an interrupted one from its start.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from knowlm.errors import InputError
from knowlm.io import atomic_write

MANIFEST = "knowlm-run.json"
TEXT_SUFFIXES = (".txt", ".text")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Shard:
    """One input file and where its results go."""

    path: str
    """Path on ``filesystem`` (for local files: an absolute path)."""
    name: str
    """The output file's path relative to the output directory, e.g. ``news/2024-01.jsonl``."""


def _filesystem(spec: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a local path or any URI pyarrow supports (s3://, gs://, hdfs://)."""
    from pyarrow import fs

    if "://" in spec:
        try:
            filesystem, path = fs.FileSystem.from_uri(spec)
            return filesystem, str(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with a reason
            raise InputError(f"--input {spec}: cannot open this location ({exc})") from None
    return fs.LocalFileSystem(), str(Path(spec).expanduser().absolute())


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a glob where ``**`` crosses directories and ``*``/``?`` do not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def output_name(relative: str) -> str:
    """``a/b.jsonl.gz`` -> ``a/b.jsonl``; ``c.parquet`` -> ``c.jsonl``."""
    path = PurePosixPath(relative)
    if path.suffix.lower() in COMPRESSION:
        path = path.with_suffix("")
    return str(path.with_suffix(".jsonl"))


def list_shards(spec: str) -> tuple[Any, list[Shard]]:
    """The input files named by ``spec``: a file, a directory (every file below it, hidden ones left out), or a
    glob (``corpus/**/*.jsonl``), locally or on a pyarrow filesystem. Sorted, so shard order is stable."""
    from pyarrow import fs

    filesystem, path = _filesystem(spec)
    match = GLOB_CHARS.search(path)
    if match:
        base = path[: match.start()].rsplit("/", 1)[0] or "/"
        regex = _glob_regex(path[len(base) :].lstrip("/"))
    else:
        base, regex = path, None
    info = filesystem.get_file_info(base)
    if info.type == fs.FileType.NotFound:
        raise InputError(f"--input {spec}: no such file or directory")
    if info.type == fs.FileType.File and regex is None:
        return filesystem, [Shard(path, output_name(PurePosixPath(path).name))]
    files = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
    shards = []
    for entry in files:
        relative = entry.path[len(base.rstrip("/")) + 1 :] if base != "/" else entry.path.lstrip("/")
        hidden = any(part.startswith((".", "_")) for part in relative.split("/"))
        if entry.type != fs.FileType.File or hidden or (regex and not regex.match(relative)):
            continue
        shards.append(Shard(entry.path, output_name(relative)))
    if not shards:
        raise InputError(f"--input {spec}: no input files there")
    shards.sort(key=lambda s: s.path)
    seen: dict[str, str] = {}
    for shard in shards:
        if shard.name in seen:
            raise InputError(
                f"--input: {seen[shard.name]} and {shard.path} would both write {shard.name}; "
                "keep one of them out of the input"
            )
        seen[shard.name] = shard.path
    return filesystem, shards


def read_shard(filesystem: Any, path: str) -> bytes:
    """The bytes of an input file, decompressed when its suffix says so (.gz, .bz2, .zst, .lz4)."""
    compression = "detect" if PurePosixPath(path).suffix.lower() in COMPRESSION else None
    with filesystem.open_input_stream(path, compression=compression) as f:
        data: bytes = f.read()
    return data


def decode_records(
    path: str, data: bytes, *, text_field: str = "text", id_field: str = "id"
) -> list[dict[str, Any]]:
    """The records of one input file: ``{"line", "id", "text"}``, or ``{"line", "id", "error"}`` for a bad one
    (named by file and line, so it is reported and never silently dropped). JSON lines and Parquet take the
    text and id from their fields (the id defaults to the line/row number); other files hold one text a line."""
    name = PurePosixPath(path)
    suffix = (name.with_suffix("") if name.suffix.lower() in COMPRESSION else name).suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        return [_record(path, n, row, text_field, id_field, "row") for n, row in enumerate(rows, 1)]
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        return [
            {"line": 0, "id": path, "error": f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"}
        ]
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if suffix not in JSON_SUFFIXES:
            records.append({"line": number, "id": number, "text": line})
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append(
                {"line": number, "id": number, "error": f"{path} line {number}: invalid JSON ({exc.msg})"}
            )
            continue
        records.append(_record(path, number, value, text_field, id_field, "line"))
    return records


def _record(path: str, number: int, value: Any, text_field: str, id_field: str, unit: str) -> dict[str, Any]:
    where = f"{path} {unit} {number}"
    if not isinstance(value, dict):
        return {"line": number, "id": number, "error": f"{where}: expected a JSON object"}
    key = value.get(id_field)
    key = number if key is None else key
    text = value.get(text_field)
    if not isinstance(text, str) or not text.strip():
        return {"line": number, "id": key, "error": f"{where}: no text in field {text_field!r}"}
    return {"line": number, "id": key, "text": text}


class Manifest:
    """``OUT/knowlm-run.json``: the settings a run was started with (a rerun must match them, or its shards would
    mix answers of different models or schemas) and, once finished, its counts."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.path = out / MANIFEST
        self.settings = json.loads(json.dumps(settings, default=str))
        self.data: dict[str, Any] = {"settings": self.settings}
        if self.path.is_file():
            try:
                previous = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise InputError(f"{self.path}: not a KnowLM run manifest (invalid JSON)") from None
            changed = sorted(
                k
                for k in set(self.settings) | set(previous.get("settings", {}))
                if previous.get("settings", {}).get(k) != self.settings.get(k)
            )
            if changed:
                raise InputError(
                    f"{out} holds results of a run with other settings ({', '.join(changed)}); "
                    "write to a new --output directory, or delete this one to start over"
                )
            self.data = previous

    def save(self, **fields: Any) -> None:
        self.data.update(fields)
        with atomic_write(self.path) as f:
            json.dump(self.data, f, indent=1, ensure_ascii=False, default=str)

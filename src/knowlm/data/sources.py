"""Corpus sources: plain text, JSONL and Parquet files (gzip/zstd welcome), globs, named and weighted.

A source spec is ``[NAME=]GLOB[:WEIGHT]`` (``wiki=data/wiki/*.jsonl.gz:0.7``) on the command line, or a
mapping in a YAML config with per-source ``field`` / ``template`` / ``text_mode``. Readers yield
`Document` objects in file order; records without the wanted field are counted, not fatal.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import io
import json
import logging
import re
import string
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from knowlm.errors import CorruptFileError, InputError, MissingDependencyError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
FORMATS = ("text", "jsonl", "parquet")
_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z0-9_.-]+)=)?(?P<pattern>.+?)(?::(?P<weight>\d+(?:\.\d*)?|\.\d+))?$")


@dataclass
class Document:
    text: str
    where: str
    """file:line (or file#row) for messages."""


@dataclass
class SourceSpec:
    """One named source: files, a mixing weight and how to read a document out of a record."""

    name: str
    patterns: list[str]
    weight: float = 1.0
    text_mode: str = "line"
    """text files: 'line' (a document a line) or 'file' (the whole file is one document)."""
    field: str = "text"
    template: str | None = None
    """JSONL/Parquet: a format string over the record's fields, e.g. '{title}\\n{content}'."""
    files: list[Path] = dataclasses.field(default_factory=list)  # `field` is a setting here

    def expand(self) -> list[Path]:
        """The files the patterns match, sorted per pattern; a pattern matching nothing is an error."""
        files: list[Path] = []
        for pattern in self.patterns:
            matched = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
            matched = [p for p in matched if p.is_file()]
            if not matched:
                raise InputError(f"source {self.name!r}: no files match {pattern!r}")
            files.extend(matched)
        self.files = list(dict.fromkeys(files))
        return self.files


def parse_source(spec: str | dict[str, Any], defaults: dict[str, Any]) -> SourceSpec:
    """Parse ``[NAME=]GLOB[:WEIGHT]`` or a YAML mapping (keys: name, path(s), weight, field, template,
    text_mode); ``defaults`` gives field/template/text_mode when the spec does not."""
    if isinstance(spec, str):
        m = _SPEC.match(spec.strip())
        if not m:
            raise InputError(f"--source {spec!r}: expected [NAME=]GLOB[:WEIGHT]")
        pattern = m["pattern"]
        values: dict[str, Any] = {
            "name": m["name"] or _stem(pattern),
            "patterns": [pattern],
            "weight": float(m["weight"]) if m["weight"] else 1.0,
        }
    elif isinstance(spec, dict):
        unknown = set(spec) - {"name", "path", "paths", "weight", "field", "template", "text_mode"}
        if unknown:
            raise InputError(f"source {spec}: unknown keys {', '.join(sorted(unknown))}")
        paths = spec.get("paths") or ([spec["path"]] if spec.get("path") else [])
        if not paths:
            raise InputError(f"source {spec}: give 'path' (a file or glob) or 'paths'")
        values = {"name": spec.get("name") or _stem(paths[0]), "patterns": list(paths)}
        values.update({k: spec[k] for k in ("weight", "field", "template", "text_mode") if k in spec})
    else:
        raise InputError(f"source {spec!r}: a string or a mapping")
    for key in ("field", "template", "text_mode"):
        if key not in values and defaults.get(key) is not None:
            values[key] = defaults[key]
    source = SourceSpec(**values)
    if not source.weight > 0:
        raise InputError(f"source {source.name!r}: weight must be > 0, got {source.weight}")
    if source.text_mode not in ("line", "file"):
        raise InputError(f"source {source.name!r}: text_mode must be 'line' or 'file'")
    if source.template:
        try:
            [f for _, f, _, _ in string.Formatter().parse(source.template)]
        except ValueError as exc:
            raise InputError(f"source {source.name!r}: bad template {source.template!r} ({exc})") from None
    return source


def _stem(pattern: str) -> str:
    name = Path(pattern).name
    for suffix in (".gz", ".zst", ".zstd", *JSON_SUFFIXES, *TEXT_SUFFIXES, ".parquet"):
        name = name.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")
    return name or "corpus"


def file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(JSON_SUFFIXES):
        return "jsonl"
    return "text"


def open_text(path: Path) -> IO[str]:
    """Open a text file, decompressing .gz / .zst on the fly (UTF-8, strict)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        raw: IO[bytes] = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115 (closed by the wrapper)
    elif name.endswith((".zst", ".zstd")):
        try:
            import zstandard
        except ImportError:
            raise MissingDependencyError(
                "reading .zst files needs zstandard: pip install 'knowlm[data]'"
            ) from None
        raw = zstandard.open(path, "rb")
    else:
        raw = path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, EOFError, zlib.error, UnicodeDecodeError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _render(record: dict[str, Any], source: SourceSpec) -> str | None:
    if source.template:
        try:
            return source.template.format_map(record)
        except (KeyError, IndexError, AttributeError):
            return None
    value = record.get(source.field)
    return value if isinstance(value, str) else None


def read_documents(path: Path, source: SourceSpec, counters: Counter[str]) -> Iterator[Document]:
    """Documents of one file. A damaged or undecodable file is an error naming it (and the line); a
    JSON record that is not valid or lacks the field is counted (``skipped.invalid_json``,
    ``skipped.missing_field``) and logged once."""
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            yield from _parquet(path, source, counters)
            return
        with open_text(path) as f:
            if fmt == "text" and source.text_mode == "file":
                yield Document(f.read(), str(path))
                return
            for number, line in enumerate(f, 1):
                if fmt == "text":
                    yield Document(line.rstrip("\r\n"), f"{path}:{number}")
                    continue
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    _skip(counters, "invalid_json", f"{path}:{number}: not valid JSON")
                    continue
                text = _render(record, source) if isinstance(record, dict) else None
                if text is None:
                    what = f"template {source.template!r}" if source.template else f"field {source.field!r}"
                    keys = ", ".join(list(record)[:8]) if isinstance(record, dict) else type(record).__name__
                    _skip(counters, "missing_field", f"{path}:{number}: no {what} (record has: {keys})")
                    continue
                yield Document(text, f"{path}:{number}")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a block)"
        ) from None
    except _read_errors() as exc:
        raise CorruptFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None


def _skip(counters: Counter[str], reason: str, message: str) -> None:
    key = f"skipped.{reason}"
    if not counters[key]:
        log.warning("%s (further such records are counted, not shown)", message)
    counters[key] += 1


def _parquet(path: Path, source: SourceSpec, counters: Counter[str]) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("reading Parquet needs pyarrow: pip install 'knowlm[data]'") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise CorruptFileError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = table.schema_arrow.names
    if not source.template and source.field not in columns:
        raise InputError(f"{path}: no column {source.field!r}; columns: {', '.join(columns)} (use --field)")
    row = 0
    for batch in table.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            text = _render(record, source)
            if text is None:
                _skip(counters, "missing_field", f"{path}#{row}: no text (null or missing field)")
                continue
            yield Document(text, f"{path}#{row}")

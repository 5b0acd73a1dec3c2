"""File helpers used at the edges: validated JSONL reading and crash-safe, resumable writing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from knowlm.errors import InputError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for each non-blank line of a UTF-8 text file (newline removed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line.rstrip("\n")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; a bad line is an error naming it."""
    for number, line in read_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path} line {number}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise InputError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; it replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write ``records`` as JSON lines, atomically (see `atomic_write`)."""
    with atomic_write(path) as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


class ResumableJsonlWriter:
    """Append records to ``PATH.partial`` as they are made; rename to ``PATH`` once all are written.

    A rerun after an interruption finds the partial file and skips the records it already holds, so
    ``PATH`` itself is never half-written.
    """

    def __init__(self, path: str | Path, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.done = 0
        if resume and self.partial.exists():
            lines = self.partial.read_text(encoding="utf-8").splitlines(keepends=True)
            complete = [line for line in lines if line.endswith("\n")]  # drop a torn last line
            self.partial.write_text("".join(complete), encoding="utf-8")
            self.done = len(complete)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.partial.write_text("", encoding="utf-8")
        self._file: IO[str] | None = self.partial.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "writer is closed"
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self.done += 1

    def finish(self) -> Path:
        """Close and move the complete file into place."""
        self.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

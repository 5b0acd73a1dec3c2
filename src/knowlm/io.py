"""File helpers used at the edges: validated JSONL reading and crash-safe, resumable writing."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from knowlm.errors import InputError

T = TypeVar("T")


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


def run_resumable(
    items: Sequence[T],
    process: Callable[[Sequence[T]], Iterable[dict[str, Any]]],
    *,
    step: int,
    output: str | Path | None = None,
    render: Callable[[list[dict[str, Any]]], str] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
    unit: str = "record",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every item's result, ``process`` taking ``step`` items at a time (one result each, in order).

    With ``output``, each result is appended to ``OUTPUT.partial`` as it comes, a rerun continues after
    the results already there, and the finished file is moved into place: the JSON lines as written, or
    ``render(results)`` written atomically (CSV, ...). The returned list holds the earlier run's results
    too. ``on_result`` sees each new result (printing as one goes), ``on_resume`` the number of results a
    rerun found already made."""
    from tqdm import tqdm

    writer = ResumableJsonlWriter(output) if output is not None else None
    results: list[dict[str, Any]] = []
    if writer is not None:
        results = [json.loads(line) for line in writer.partial.read_text(encoding="utf-8").splitlines()]
        if results and on_resume is not None:
            on_resume(len(results))
    with tqdm(
        total=len(items),
        initial=len(results),
        unit=unit,
        file=sys.stderr,
        disable=not progress or len(items) <= 1,
    ) as bar:
        for begin in range(len(results), len(items), step):
            chunk = items[begin : begin + step]
            made = list(process(chunk))
            if len(made) != len(chunk):
                raise RuntimeError(f"run_resumable: {len(made)} results for {len(chunk)} items")
            for result in made:
                if writer is not None:
                    writer.write(result)
                if on_result is not None:
                    on_result(result)
            results += made
            bar.update(len(chunk))
    if writer is not None:
        if render is None:
            writer.finish()
        else:
            writer.close()
            with atomic_write(writer.path) as f:
                f.write(render(results))
            writer.partial.unlink()
    return results

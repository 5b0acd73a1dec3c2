"""The library's exceptions: one root, two families.

`InputError` (bad input from the user: a path, a flag, a schema) becomes exit code 2 in the CLI and a
4xx answer in the API; any other `KnowLMError` is a failure (exit code 1, 5xx).
"""

from __future__ import annotations


class KnowLMError(Exception):
    """Root of every error KnowLM raises on purpose."""


class InputError(KnowLMError, ValueError):
    """The user gave something invalid; the message names it and says how to fix it."""


class ModelNotFoundError(InputError):
    """A model reference (path, file or Hub id) does not resolve to a model."""


class ModelLoadError(KnowLMError):
    """A model was found but could not be loaded (corrupt file, mismatched adapter, ...)."""


class CorruptFileError(InputError):
    """An input file exists but is damaged or of the wrong kind."""


class TrainingDivergedError(KnowLMError):
    """Training produced a non-finite loss, gradient or weight; nothing was saved as the final model."""


class MissingDependencyError(KnowLMError, ImportError):
    """An optional dependency is needed for this feature; the message names the extra to install."""


def collect(problems: list[str], what: str) -> None:
    """Raise one `InputError` listing every problem found, or return when there are none."""
    if not problems:
        return
    if len(problems) == 1:
        raise InputError(f"{what}: {problems[0]}")
    raise InputError(f"{what}: " + "; ".join(problems))

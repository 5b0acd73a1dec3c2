"""CLI flags generated from the typed settings in `knowlm.config`, so each setting is defined once."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any, TypeVar

from knowlm.errors import InputError

T = TypeVar("T")

_SCALARS = {"int": int, "float": float, "str": str}


def add_dataclass_args(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    suppress_defaults: bool = False,
) -> None:
    """Add one ``--flag`` per field of dataclass ``cls``; the field's ``help`` metadata is its help.

    With ``suppress_defaults``, flags not given on the command line are absent from the namespace (so a
    recipe file can supply them); the help still shows the default.
    """
    for f in dataclasses.fields(cls):
        if f.name in exclude or f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        type_name = str(kind).replace(" ", "")
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if type_name == "bool":
            # a negative option (no_adapter) is a plain switch: "--no-no-adapter" would read badly
            kwargs["action"] = "store_true" if f.name.startswith("no_") else argparse.BooleanOptionalAction
        elif type_name == "list[str]":
            kwargs.update(action="append", metavar="TEXT", default=None)
        else:
            scalar = type_name.removesuffix("|None")
            kwargs["type"] = _SCALARS[scalar]
            kwargs["metavar"] = f.metadata.get("metavar", scalar.upper())
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
                kwargs.pop("metavar")
        if type_name != "bool" and default not in (None, [], ""):
            help_text += f" (default: {default})"
        if suppress_defaults:
            kwargs["default"] = argparse.SUPPRESS
        parser.add_argument(flag, help=help_text, **kwargs)


def from_args(cls: type[T], namespace: argparse.Namespace) -> T:
    """Build ``cls`` from parsed flags (fields not on the command line keep their defaults)."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(namespace, f.name, None)
        if value is not None or str(f.type).replace(" ", "").endswith("|None"):
            values[f.name] = value
    return cls(**values)


_RECIPE_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
    "list[str]": list,
}


def load_recipe(path: str | Path, cls: type) -> dict[str, Any]:
    """Read a YAML recipe for dataclass ``cls``; unknown keys and wrong types are errors that name them."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe is a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{path}: unknown settings {', '.join(unknown)}")
    for key, value in data.items():
        kind = str(fields[key].type).replace(" ", "").removesuffix("|None")
        expected = _RECIPE_TYPES[kind]
        if value is not None and (
            not isinstance(value, expected) or (kind == "int" and isinstance(value, bool))
        ):
            raise InputError(f"{path}: '{key}' must be {kind}, got {value!r}")
        if value is not None and fields[key].metadata.get("path"):
            data[key] = _relative_to(path.parent, value, fields[key].metadata["path"])
    return data


_WEIGHT = re.compile(r":(?:\d+(?:\.\d*)?|\.\d+)$")
_NAME = re.compile(r"^[\w.-]+=")


def _relative_to(base: Path, value: Any, kind: str) -> Any:
    """A recipe's path setting read relative to the recipe's directory (absolute paths, URLs, and model
    references that are not a path there — 'default', Hub ids — stay as they are)."""
    if isinstance(value, list):
        return [_relative_to(base, v, kind) for v in value]
    if isinstance(value, dict) and "path" in value:  # a source written as a mapping {name, path, ...}
        return {**value, "path": _relative_to(base, value["path"], "file")}
    if not isinstance(value, str) or not value or "://" in value or Path(value).is_absolute():
        return value
    if kind == "ref":
        return str(base / value) if (base / value).exists() else value
    if kind == "spec":  # [NAME=]PATH[:WEIGHT]: only the path part moves
        name = _NAME.match(value)
        head = name.group(0) if name else ""
        weight = _WEIGHT.search(value[len(head) :])
        tail = weight.group(0) if weight else ""
        middle = value[len(head) : len(value) - len(tail)]
        return head + str(base / middle) + tail
    return str(base / value)


def config_from(args: argparse.Namespace, cls: type[T]) -> T:
    """``cls`` from ``--config RECIPE`` (if given) with the flags given on the command line on top."""
    values = load_recipe(args.config, cls) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values.update({k: v for k, v in vars(args).items() if k in names})  # flags override the recipe
    return cls(**values)

"""Structure that must hold: registries and settings sit in leaf modules, and task knowledge stays in the
task definitions (docs/architecture.md)."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "knowlm"


def imported(path: Path) -> set[str]:
    """Every knowlm module ``path`` imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("knowlm"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("knowlm"))
    return names


def test_settings_and_schemas_import_no_engine_and_no_task_registry():
    assert not {m for m in imported(SRC / "config.py") if m.startswith("knowlm.engines")}
    assert imported(SRC / "config.py") <= {"knowlm.errors"}
    assert "knowlm.ie.tasks" not in imported(SRC / "ie" / "schema.py")
    assert not {m for m in imported(SRC / "engines" / "base.py") if m.startswith("knowlm.engines.")}


def test_no_module_asks_a_task_its_name():
    pattern = re.compile(r"task\.name\s*(==|!=|in\b)|\.kind\s*==\s*\"(entity|triple|event)\"")
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        if path.name != "tasks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders

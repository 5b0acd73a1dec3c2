"""Every command block of README.md runs as written, from a scratch directory laid out like a fresh clone
(recipes and examples copied, the project's .venv linked), so the README cannot drift from the code.

Blocks that need what a test cannot have are skipped with the reason: the Makefile targets themselves (CI
runs `make test`), a server or an interactive session, downloads of tens of GB. Blocks that train for
minutes are marked `expensive` and run with KNOWLM_TEST_EXPENSIVE=1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)

SKIPS = {
    "make demo": "the Makefile targets themselves: CI runs `make test`, and `make demo`'s extractions are tests",
    "knowlm serve": "a server that runs until stopped; tests/serve covers the API and its curl example",
    "knowlm chat": "an interactive session; tests/cli covers chat",
    "knowlm download": "downloads LLaMA-13B's diff and the ZhiXi weights (tens of GB) from the Hub",
}
EXPENSIVE = ("knowlm finetune", "knowlm pretrain")


def blocks() -> list[pytest.param]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        lang, body = match[1], match[2]
        if lang not in ("bash", "python"):
            continue
        line = text[: match.start()].count("\n") + 1
        first = next(s for s in body.splitlines() if s.strip())
        marks = []
        skip = next((why for key, why in SKIPS.items() if key in body), None)
        if skip:
            marks.append(pytest.mark.skip(reason=skip))
        elif any(key in body for key in EXPENSIVE):
            marks.append(pytest.mark.expensive)
        found.append(pytest.param(lang, body, id=f"L{line}:{first[:40]}", marks=[pytest.mark.slow, *marks]))
    return found


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out like the repository root: recipes and examples copied (recipes resolve paths
    relative to themselves, so a link would write into the checkout), the virtualenv linked."""
    work = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "recipes", work / "recipes")
    shutil.copytree(ROOT / "examples", work / "examples")
    venv = Path(sys.executable).parent.parent
    (work / ".venv").symlink_to(venv, target_is_directory=True)
    return work


@pytest.mark.parametrize(("lang", "body"), blocks())
def test_readme_block_runs_as_written(clone: Path, lang: str, body: str):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", "-e", "-o", "pipefail", "-c", body] if lang == "bash" else [sys.executable, "-c", body]
    result = subprocess.run(
        command, cwd=clone, env=env, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )

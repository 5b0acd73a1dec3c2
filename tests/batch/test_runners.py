"""Corpus runs: resumable by shard, nothing lost or duplicated, and the same records from Ray as locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from knowlm.batch import ActorPool, Job, run_local, run_ray
from knowlm.batch.runners import WORKER_NICENESS, start_ray
from knowlm.config import ExtractConfig, ModelConfig, SamplingParams
from knowlm.errors import InputError

TEXTS = [
    "Steve Jobs founded Apple in California.",
    "Berlin is the capital of Germany.",
    "马云在杭州创立了阿里巴巴。",
    "Paris is the capital of France.",
    "Tim Cook leads Apple in Cupertino.",
]


def write_corpus(root: Path, files: int = 3, per_file: int = 5) -> Path:
    (root / "part").mkdir(parents=True)
    for f in range(files):
        lines = [json.dumps({"id": f"{f}-{i}", "text": TEXTS[(f + i) % len(TEXTS)]}) for i in range(per_file)]
        if f == 0:
            lines.insert(2, "{broken")
        (root / "part" / f"f{f}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "empty.jsonl").write_text("", encoding="utf-8")
    return root


def outputs(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.jsonl"))}


@pytest.fixture
def job(tiny_model_dir: Path) -> Job:
    return Job(
        model=ModelConfig(model=str(tiny_model_dir), engine="transformers", device="cpu", batch_size=2),
        extract=ExtractConfig(task="ner", schema="person,organization,location"),
        params=SamplingParams(max_new_tokens=6),
        batch_size=2,
    )


def test_local_run_writes_one_file_per_input_with_every_record_once(tmp_path: Path, job: Job) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    report = run_local(str(corpus), tmp_path / "out", job)
    files = outputs(tmp_path / "out")
    assert sorted(files) == ["empty.jsonl", "part/f0.jsonl", "part/f1.jsonl", "part/f2.jsonl"]
    first = [json.loads(line) for line in files["part/f0.jsonl"].splitlines()]
    assert [r["id"] for r in first] == ["0-0", "0-1", 3, "0-2", "0-3", "0-4"]
    assert "line 3: invalid JSON" in first[2]["error"]
    assert all(r["task"] == "ner" and "results" in r for i, r in enumerate(first) if i != 2)
    assert files["empty.jsonl"] == ""
    assert (report.shards, report.skipped, report.records, report.bad) == (4, 0, 16, 1)
    manifest = json.loads((tmp_path / "out" / "knowlm-run.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["extract"]["schema"][0]["name"] == "person"
    assert manifest["last_run"]["records"] == 16


def test_an_interrupted_run_resumes_by_shard_to_the_same_files(tmp_path: Path, job: Job) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    whole = run_local(str(corpus), tmp_path / "whole", job)
    seen: list[str] = []

    def stop_in_second_file(step: dict[str, Any]) -> None:
        seen.append(step["shard"])
        if step["shard"] == "part/f1.jsonl":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local(str(corpus), tmp_path / "out", job, progress=stop_in_second_file)
    assert (tmp_path / "out" / "part" / "f0.jsonl").is_file()
    assert not (tmp_path / "out" / "part" / "f1.jsonl").exists()
    assert (tmp_path / "out" / "part" / "f1.jsonl.partial").is_file()
    redone: list[str] = []
    report = run_local(str(corpus), tmp_path / "out", job, progress=lambda s: redone.append(s["shard"]))
    assert "part/f0.jsonl" not in redone and report.skipped == 2  # f0 and empty.jsonl were complete
    assert outputs(tmp_path / "out") == outputs(tmp_path / "whole")
    assert not list((tmp_path / "out").rglob("*.partial"))
    assert whole.records == 16


def test_a_rerun_with_another_schema_is_refused(tmp_path: Path, job: Job) -> None:
    corpus = write_corpus(tmp_path / "corpus", files=1, per_file=1)
    run_local(str(corpus), tmp_path / "out", job)
    other = Job(
        model=job.model,
        extract=ExtractConfig(task="ner", schema="person"),
        params=job.params,
        batch_size=job.batch_size,
    )
    with pytest.raises(InputError, match="other settings"):
        run_local(str(corpus), tmp_path / "out", other)


# --- Ray ---------------------------------------------------------------------------------------------

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'knowlm[scale]')")


@pytest.fixture(scope="module")
def local_ray() -> Any:
    start_ray(num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_started_for_a_run_runs_its_workers_at_normal_priority(local_ray: Any) -> None:
    # Ray's default niceness (15) lets its own processes preempt the engines: see start_ray
    assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == 0
    assert "RAY_worker_niceness" not in os.environ  # the driver's environment is left as it was


def test_ray_gives_the_local_records_and_a_killed_actor_loses_nothing(
    tmp_path: Path, job: Job, local_ray: Any
) -> None:
    corpus = write_corpus(tmp_path / "corpus", files=3, per_file=8)
    run_local(str(corpus), tmp_path / "local", job)
    killed: list[int] = []

    def kill_the_actor_once(step: dict[str, Any]) -> None:
        if not killed:
            killed.append(step["pid"])
            os.kill(step["pid"], signal.SIGKILL)

    report = run_ray(str(corpus), tmp_path / "ray", job, pool=ActorPool(1), progress=kill_the_actor_once)
    assert killed and killed[0] != os.getpid()
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    assert report.records == 25 and report.bad == 1


def test_ray_resumes_a_run_the_local_runner_began(tmp_path: Path, job: Job, local_ray: Any) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    run_local(str(corpus), tmp_path / "whole", job)

    def stop(step: dict[str, Any]) -> None:
        if step["shard"] == "part/f1.jsonl":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local(str(corpus), tmp_path / "out", job, progress=stop)
    report = run_ray(str(corpus), tmp_path / "out", job, pool=ActorPool(2))
    assert report.skipped == 2 and report.shards == 2
    assert outputs(tmp_path / "out") == outputs(tmp_path / "whole")


def test_two_ray_nodes_on_this_machine_both_receive_work(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`ray start --head` plus a second `ray start --address`, and `knowlm extract --runner ray --ray-address`
    run as a user would (token authentication is on, as `ray start` sets it up by default)."""
    ray.shutdown()  # the module's local Ray, if one is running: this test starts its own cluster
    bin_dir = Path(sys.executable).parent
    port = "26391"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", WORKER_NICENESS: "0"}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    # enough work (16 calls of 4 records, 48 new tokens each: `records_per_call(1)`) that the second actor has
    # started before the first is done
    corpus = write_corpus(tmp_path / "corpus", files=8, per_file=8)
    try:
        start = [str(bin_dir / "ray"), "start", *common]
        subprocess.run([*start, "--head", f"--port={port}", "--include-dashboard=false"], check=True, env=env)
        subprocess.run([*start, f"--address=127.0.0.1:{port}"], check=True, env=env)
        args = ["extract", "--task", "ner", "--schema", "person", "--model", str(tiny_model_dir)]
        args += ["--engine", "transformers", "--max-new-tokens", "48", "--batch-size", "1"]
        args += ["--input", str(corpus), "--output", str(tmp_path / "out"), "--runner", "ray"]
        args += ["--ray-address", f"127.0.0.1:{port}", "--num-actors", "2"]
        run = subprocess.run([str(bin_dir / "knowlm"), *args], env=env, capture_output=True, text=True)
    finally:
        subprocess.run([str(bin_dir / "ray"), "stop", "--force"], capture_output=True, env=env)
    assert run.returncode == 2, run.stderr[-3000:]  # f0's bad line is reported: exit 2
    manifest = json.loads((tmp_path / "out" / "knowlm-run.json").read_text(encoding="utf-8"))
    nodes = manifest["last_run"]["nodes"]
    assert len(nodes) == 2 and all(n > 0 for n in nodes.values()), nodes
    assert manifest["last_run"]["records"] == 65


def test_the_cli_runs_a_glob_into_a_directory(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from knowlm.cli.main import main

    corpus = write_corpus(tmp_path / "corpus", files=2, per_file=2)
    args = ["extract", "--task", "ner", "--schema", "person", "--model", str(tiny_model_dir)]
    args += ["--engine", "transformers", "--max-new-tokens", "4", "--output", str(tmp_path / "out")]
    assert main([*args, "--input", f"{corpus}/part/f1*"]) == 0
    assert main([*args, "--input", f"{corpus}/part/*.jsonl"]) == 2  # f0 has a bad line: reported, exit 2
    assert sorted(outputs(tmp_path / "out")) == ["f0.jsonl", "f1.jsonl"]
    assert "1 input records were bad" in capsys.readouterr().err
    assert main([*args, "--input", str(corpus), "--num-actors", "2"]) == 2
    assert "--num-actors needs --runner ray" in capsys.readouterr().err
    assert main([*args, "--input", str(corpus), "--format", "csv"]) == 2
    assert "a corpus run writes JSON lines" in capsys.readouterr().err

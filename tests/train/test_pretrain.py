"""Continued pretraining end to end on CPU: prepared sample corpus -> a tiny LLaMA whose loss falls;
resumption, mixing, torchrun (gloo), DeepSpeed configs, recipes, tokenizer mismatch."""

from __future__ import annotations

import csv
import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knowlm.cli.args import load_recipe
from knowlm.config import PrepareConfig, PretrainConfig
from knowlm.data.prepare import prepare
from knowlm.errors import InputError
from knowlm.train.pretrain import mix, pretrain, split

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(tiny_model_dir, tmp_path_factory) -> Path:
    corpus = ROOT / "examples" / "data" / "pretrain"
    out = tmp_path_factory.mktemp("prepared")
    prepare(
        PrepareConfig(
            source=[f"sample={corpus}/*.txt"], out=str(out), tokenizer=str(tiny_model_dir), seq_length=64
        ),
        progress=False,
    )
    return out


def run_config(model: Path, data: Path, out: Path, **kw) -> PretrainConfig:
    values = dict(
        model=str(model),
        data=[str(data)],
        output_dir=str(out),
        max_steps=40,
        batch_size=8,
        learning_rate=3e-3,
        warmup_ratio=0.05,
        logging_steps=5,
        eval_steps=20,
        save_steps=20,
        val_size=0.05,
        max_eval_samples=64,
    )
    return PretrainConfig(**{**values, **kw})


def test_pretraining_lowers_the_loss_and_logs_it(tiny_model_dir, prepared, tmp_path):
    out = tmp_path / "run"
    summary = pretrain(run_config(tiny_model_dir, prepared, out))
    losses = [e["loss"] for e in summary["log"] if "loss" in e]
    assert summary["steps"] == 40 and len(losses) == 8
    assert np.mean(losses[-2:]) < 0.75 * losses[0], losses
    evals = [e for e in summary["log"] if "eval_loss" in e]
    assert len(evals) == 2 and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert summary["eval_perplexity"] == pytest.approx(np.exp(summary["eval_loss"]))
    with (out / "training_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("eval_perplexity") for r in rows) and any(r.get("loss") for r in rows)
    assert list(out.glob("runs/**/events.out.tfevents.*")), "no TensorBoard log"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert json.loads((out / "knowlm-pretrain.json").read_text())["steps"] == 40

    # resumption: continue the same run to 50 steps from its last checkpoint
    resumed = pretrain(
        run_config(tiny_model_dir, prepared, out, max_steps=50, resume="auto", eval_steps=10, save_steps=10)
    )
    assert resumed["steps"] == 50 and resumed["resumed_from"] == str(out / "checkpoint-40")


def test_from_scratch_grows_the_vocabulary_to_the_tokenizer(tiny_model_dir, prepared, tmp_path):
    out = tmp_path / "scratch"
    config = run_config(
        ROOT / "recipes" / "models" / "tiny-llama",
        prepared,
        out,
        from_scratch=True,
        tokenizer=str(tiny_model_dir),
        max_steps=2,
        val_size=0,
        report_to="none",
    )
    summary = pretrain(config)
    saved = json.loads((out / "config.json").read_text())
    assert summary["steps"] == 2 and saved["num_hidden_layers"] == 2
    assert saved["vocab_size"] >= len(
        json.loads((tiny_model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    )


def test_tokenizer_mismatch_is_refused(tiny_model_dir, prepared, tmp_path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(tiny_model_dir)
    other.add_tokens(["<new-token>"])
    other.save_pretrained(tmp_path / "other-tok")
    config = run_config(tiny_model_dir, prepared, tmp_path / "x", tokenizer=str(tmp_path / "other-tok"))
    with pytest.raises(InputError, match="prepare the data again with --tokenizer"):
        pretrain(config)
    assert not (tmp_path / "x").exists()


def test_data_errors(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        pretrain(run_config(tiny_model_dir, tmp_path / "missing", tmp_path / "x"))
    with pytest.raises(InputError, match=r"manifest\.json"):
        pretrain(run_config(tiny_model_dir, tmp_path, tmp_path / "x"))


def test_split_and_mix():
    train, val = split(1000, 0.05, 0)
    assert len(val) == 50 and len(train) == 950 and not set(train) & set(val)
    assert split(1000, 0.05, 0)[1].tolist() == val.tolist()
    pools = [np.arange(100), np.arange(10)]
    index = mix(pools, [0.25, 0.75], 400, 0)
    counts = np.bincount(index[:, 0])
    assert counts.tolist() == [100, 300]
    small = index[index[:, 0] == 1, 1]
    assert np.bincount(small).tolist() == [30] * 10  # the small set repeats evenly
    assert sorted(index[index[:, 0] == 0, 1].tolist()) == list(range(100))


def test_cli_recipe_with_overrides(tiny_model_dir, prepared, tmp_path, capsys):
    from knowlm.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {tiny_model_dir}\ndata:\n  - {prepared}\noutput_dir: {tmp_path / 'r'}\nmax_steps: 50\n"
        "report_to: none\nval_size: 0\n"
    )
    assert main(["pretrain", "--config", str(recipe), "--max-steps", "2"]) == 0
    assert json.loads((tmp_path / "r" / "knowlm-pretrain.json").read_text())["steps"] == 2
    recipe.write_text("batch_size: many\n")
    assert main(["pretrain", "--config", str(recipe)]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_torchrun_two_processes_gloo(tiny_model_dir, prepared, tmp_path):
    """DDP on CPU: two processes train one model with the gloo backend."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29519"]
    cmd += [str(Path(__file__).with_name("record_ranks.py"))]
    cmd += ["pretrain", "--model", str(tiny_model_dir), "--data", str(prepared)]
    cmd += ["--output-dir", str(out), "--max-steps", "4", "--batch-size", "4", "--val-size", "0"]
    cmd += ["--save-steps", "4", "--report-to", "csv"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KNOWLM_TEST_RECORD": str(tmp_path / "calls.txt")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "knowlm-pretrain.json").read_text())
    assert summary["steps"] == 4 and (out / "model.safetensors").exists()
    assert summary["world_size"] == 2
    calls = (tmp_path / "calls.txt").read_text().split("\n")
    assert sorted(c for c in calls if c.endswith("save_model ddp")) == [
        "0 save_model ddp",
        "1 save_model ddp",
    ]
    assert [c for c in calls if "save_pretrained" in c] == ["0 save_pretrained ddp"]


@pytest.mark.parametrize("name", ["zero2.json", "zero3.json"])
def test_deepspeed_configs(name, tiny_model_dir, tmp_path):
    path = ROOT / "recipes" / "deepspeed" / name
    config = json.loads(path.read_text())
    assert config["zero_optimization"]["stage"] == int(name[4])
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # filled in from the Trainer's arguments
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip(
            "DeepSpeed is not installed (a GPU extra: pip install deepspeed); config checked statically"
        )
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), deepspeed=str(path), per_device_train_batch_size=2)
    assert args.hf_deepspeed_config.config["zero_optimization"]["stage"] == int(name[4])


def test_shipped_pretraining_recipes_load():
    recipes = sorted((ROOT / "recipes" / "pretrain").glob("*.yaml"))
    assert len(recipes) >= 3
    for recipe in recipes:
        cls = PrepareConfig if recipe.name.startswith("prepare") else PretrainConfig
        config = cls(**load_recipe(recipe, cls)).validate()
        if isinstance(config, PretrainConfig) and config.deepspeed:
            assert Path(config.deepspeed).is_file()  # paths are read relative to the recipe
        outputs = config.out if isinstance(config, PrepareConfig) else config.output_dir
        assert Path(outputs).resolve().is_relative_to(ROOT / "runs")
    sample = PrepareConfig(
        **load_recipe(ROOT / "recipes" / "pretrain" / "prepare-sample.yaml", PrepareConfig)
    )
    assert len(glob.glob(sample.source[0].split("=", 1)[1])) == 5  # the corpus shipped in examples/data
    tiny = PretrainConfig(**load_recipe(ROOT / "recipes" / "pretrain" / "tiny-cpu.yaml", PretrainConfig))
    assert (Path(tiny.model) / "config.json").is_file()


def test_checkpoint_cadence_is_free_in_pretraining_but_tied_to_evaluation_in_finetuning(tmp_path):
    """Fine-tuning keeps the best checkpoint, so it saves at evaluation steps; pretraining keeps the last."""
    from knowlm.config import FinetuneConfig

    run_config(tmp_path, tmp_path, tmp_path / "o", save_steps=50, eval_steps=30).validate()
    with pytest.raises(InputError, match=r"--save-steps \(50\) must be a multiple of --eval-steps \(30\)"):
        FinetuneConfig(
            model="m", data="d.jsonl", output_dir=str(tmp_path), save_steps=50, eval_steps=30, val_size=0.1
        ).validate()

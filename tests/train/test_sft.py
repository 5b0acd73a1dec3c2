"""LoRA training on a tiny random LLaMA: loss falls, the adapter loads back and changes outputs,
resumption continues the step count, the fast loss equals the plain one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from knowlm.config import FinetuneConfig, ModelConfig, SamplingParams
from knowlm.errors import InputError, ModelNotFoundError

ROWS = [
    {"instruction": f"Repeat the word number {i}.", "output": f"word{i % 4} word{i % 4}"} for i in range(24)
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def config(tiny_model_dir, data, out, **changes):
    values = dict(
        model=str(tiny_model_dir),
        data=str(data),
        output_dir=str(out),
        template="alpaca",
        max_steps=16,
        batch_size=4,
        learning_rate=5e-3,
        logging_steps=2,
        eval_steps=8,
        save_steps=8,
        cutoff_len=128,
        val_size=4,
        warmup_ratio=0.0,
        lr_scheduler="constant",
    )
    values.update(changes)
    return FinetuneConfig(**values)


def test_lora_training_learns_and_the_adapter_loads(tiny_model_dir, data, tmp_path):
    from knowlm.engines import create_engine
    from knowlm.train.sft import finetune

    out = tmp_path / "adapter"
    summary = finetune(config(tiny_model_dir, data, out))
    losses = [e["loss"] for e in summary["log"] if "loss" in e]
    assert summary["steps"] == 16 and losses[-1] < losses[0] * 0.7
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert (out / "training_log.csv").read_text().startswith("step,epoch,loss,eval_loss")
    saved = json.loads((out / "knowlm-finetune.json").read_text())
    assert saved["examples"] == {"train": 20, "validation": 4, "truncated": 0, "packed": False}

    prompt = "Below is an instruction"
    base = create_engine(ModelConfig(model=str(tiny_model_dir), engine="transformers", device="cpu"))
    tuned = create_engine(
        ModelConfig(model=str(tiny_model_dir), adapter=str(out), engine="transformers", device="cpu")
    )
    params = SamplingParams(max_new_tokens=8)
    assert base.generate([prompt], params)[0].text != tuned.generate([prompt], params)[0].text


def test_resume_continues_the_step_count(tiny_model_dir, data, tmp_path):
    from knowlm.train.sft import finetune

    out = tmp_path / "run"
    finetune(config(tiny_model_dir, data, out, max_steps=8, val_size=0))
    assert (out / "checkpoint-8").is_dir()
    summary = finetune(config(tiny_model_dir, data, out, max_steps=12, val_size=0, resume="auto"))
    assert summary["steps"] == 12
    logged = [int(line.split(",")[0]) for line in (out / "training_log.csv").read_text().splitlines()[1:]]
    assert logged == [2, 4, 6, 8, 10, 12]  # the second run went on from step 8, it did not start over


def test_answer_only_loss_equals_the_plain_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from knowlm.train.sft import LeftPadCollator, _trainer_class

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [
        {"input_ids": [1, 20, 21, 22, 23], "labels": [-100, -100, -100, 22, 23]},
        {"input_ids": [1, 30, 31], "labels": [-100, -100, 31]},
    ]
    batch = LeftPadCollator(0)(rows)
    trainer = _trainer_class().__new__(_trainer_class())
    fast = trainer.compute_loss(model, dict(batch))
    plain = model(**batch).loss
    assert torch.allclose(fast, plain, atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"target_modules": "q_proj,wrong_proj"}, "wrong_proj not found in the model; its linear layers are"),
        ({"cutoff_len": 8}, "--cutoff-len 8 is shorter than the prompt"),
        ({"method": "qlora"}, "needs a CUDA GPU"),
    ],
)
def test_bad_settings_fail_before_training(tiny_model_dir, data, tmp_path, changes, needle):
    from knowlm.train.sft import finetune

    if changes.get("method") == "qlora" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match=needle):
        finetune(config(tiny_model_dir, data, tmp_path / "x", **changes))
    assert not (tmp_path / "x" / "checkpoint-8").exists()


def test_empty_data(tiny_model_dir, tmp_path):
    from knowlm.train.sft import finetune

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no records"):
        finetune(config(tiny_model_dir, empty, tmp_path / "x"))


def test_cli_recipe_and_overrides(tiny_model_dir, data, tmp_path, capsys):
    from knowlm.cli.main import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_model_dir}\ndata: {data}\noutput_dir: {tmp_path / 'from-recipe'}\n"
        "template: alpaca\nmax_steps: 2\nval_size: 0\ncutoff_len: 128\n"
    )
    code = main(
        ["finetune", "--config", str(recipe), "--max-steps", "3", "--output-dir", str(tmp_path / "cli")]
    )
    assert code == 0
    assert json.loads((tmp_path / "cli" / "knowlm-finetune.json").read_text())["steps"] == 3
    recipe.write_text("learning_rate: fast\n")
    assert main(["finetune", "--config", str(recipe)]) == 2
    assert "'learning_rate' must be float" in capsys.readouterr().err
    recipe.write_text("colour: blue\n")
    assert main(["finetune", "--config", str(recipe)]) == 2
    assert "unknown settings colour" in capsys.readouterr().err


def test_shipped_recipes_load():
    from knowlm.cli.args import load_recipe

    recipes = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
    assert recipes
    root = Path(__file__).resolve().parents[2]
    for recipe in recipes:
        values = load_recipe(recipe, FinetuneConfig)
        FinetuneConfig(**values).validate()
        # paths are read relative to the recipe file: the shipped ones point into the repository's runs/
        assert Path(values["output_dir"]).resolve().is_relative_to(root / "runs")


def test_torchrun_two_processes_gloo(tiny_model_dir, data, tmp_path):
    """DDP on CPU: two processes train one model with the gloo backend."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        str(Path(__file__).with_name("record_ranks.py")),
        "finetune",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--output-dir",
        str(out),
        "--template",
        "alpaca",
        "--max-steps",
        "4",
        "--val-size",
        "0",
        "--cutoff-len",
        "128",
        "--batch-size",
        "2",
        "--save-steps",
        "4",
    ]
    env["KNOWLM_TEST_RECORD"] = str(tmp_path / "calls.txt")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "knowlm-finetune.json").read_text())
    assert summary["steps"] == 4 and (out / "adapter_model.safetensors").exists()
    # the final save runs on every rank (ZeRO-3 gathers weights collectively); side files on rank 0 only
    calls = (tmp_path / "calls.txt").read_text().split("\n")
    assert sorted(c for c in calls if c.endswith("save_model ddp")) == [
        "0 save_model ddp",
        "1 save_model ddp",
    ]
    assert [c for c in calls if "save_pretrained" in c] == ["0 save_pretrained ddp"]


def test_eval_ie_report_is_stored_beside_the_adapter(tiny_model_dir, data, tmp_path):
    from knowlm.train.sft import finetune

    instruction = json.dumps({"instruction": "x", "schema": ["founder"], "input": "Jobs founded Apple."})
    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        json.dumps(
            {
                "task": "RE",
                "instruction": instruction,
                "output": '{"founder": [{"head": "Jobs", "tail": "Apple"}]}',
            }
        )
        + "\n"
    )
    out = tmp_path / "with-eval"
    summary = finetune(
        config(tiny_model_dir, data, out, max_steps=2, val_size=0, eval_ie=str(dev), eval_ie_max_new_tokens=8)
    )
    report = json.loads((out / "ie-eval.json").read_text())
    assert report["task"] == "re" and report["gold"] == 1 and {"precision", "recall", "f1"} <= set(report)
    assert summary["eval_ie"]["f1"] == report["f1"]
    assert report["constrained"] is True  # decoded as `knowlm extract` decodes, not freely


def test_eval_ie_under_zero3_is_refused_before_loading(tiny_model_dir, data, tmp_path):
    from knowlm.train.sft import finetune

    dev = tmp_path / "dev.jsonl"
    dev.write_text("{}\n")
    zero3 = str(Path(__file__).parents[2] / "recipes" / "deepspeed" / "zero3.json")
    with pytest.raises(InputError, match="ZeRO-3"):
        finetune(config(tiny_model_dir, data, tmp_path / "o", eval_ie=str(dev), deepspeed=zero3))


@pytest.mark.requires_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU")
def test_qlora_on_gpu(tiny_model_dir, data, tmp_path):
    pytest.importorskip("bitsandbytes")
    from knowlm.train.sft import finetune

    out = tmp_path / "qlora"
    summary = finetune(config(tiny_model_dir, data, out, method="qlora", max_steps=4, val_size=0, bf16=True))
    assert summary["steps"] == 4 and (out / "adapter_model.safetensors").exists()


def test_frozen_lower_layers_and_embeddings_stay_unchanged(tiny_model_dir, data, tmp_path):
    from safetensors.torch import load_file

    from knowlm.train.sft import finetune

    out = tmp_path / "full"
    finetune(
        config(tiny_model_dir, data, out, method="full", freeze_layers=1, freeze_embeddings=True, val_size=0)
    )
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert not any(n.startswith(("model.layers.0.", "model.embed_tokens")) for n in changed)
    assert any(n.startswith("model.layers.1.") for n in changed)


def test_lora_skips_the_frozen_lower_layers(tiny_model_dir, data, tmp_path):
    from safetensors.torch import load_file

    from knowlm.train.sft import finetune

    out = tmp_path / "lora"
    finetune(config(tiny_model_dir, data, out, freeze_layers=1, target_modules="all-linear", val_size=0))
    names = list(load_file(out / "adapter_model.safetensors"))
    assert names and all(".layers.1." in n for n in names)  # the tiny model has 2 layers: only layer 1
    with pytest.raises(InputError, match="--freeze-layers 2: the model has only 2 layers"):
        finetune(config(tiny_model_dir, data, tmp_path / "x", freeze_layers=2, val_size=0))
    with pytest.raises(InputError, match="--freeze-embeddings applies to --method full"):
        config(tiny_model_dir, data, tmp_path / "y", freeze_embeddings=True).validate()


def test_the_instruction_texts_of_oneke_training_data_are_kept_beside_the_model(tmp_path):
    from knowlm.config import FinetuneConfig
    from knowlm.ie.instructions import FILE_NAME, load_instructions
    from knowlm.train.sft import save_instructions

    data = tmp_path / "oneke.jsonl"
    body = {"instruction": "Find them.", "schema": ["person"], "input": "Tim Cook runs Apple."}
    data.write_text(json.dumps({"task": "NER", "instruction": json.dumps(body), "output": "{}"}) + "\n")
    save_instructions(FinetuneConfig(data=str(data), output_dir=str(tmp_path)), tmp_path)
    assert load_instructions(tmp_path / FILE_NAME) == {"oneke": {"ner": {"en": "Find them."}}}
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps({"instruction": "hi", "output": "hello"}) + "\n")
    (tmp_path / FILE_NAME).unlink()
    save_instructions(FinetuneConfig(data=str(alpaca), output_dir=str(tmp_path)), tmp_path)
    assert not (tmp_path / FILE_NAME).exists()  # not OneKE data: nothing to keep
    # an adapter trained further keeps what it learned before; the new data's texts win where both have one
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    before = {"oneke": {"ner": {"en": "Old text.", "zh": "旧的。"}, "re": {"zh": "关系。"}}}
    (earlier / FILE_NAME).write_text(json.dumps(before, ensure_ascii=False), encoding="utf-8")
    save_instructions(FinetuneConfig(data=str(data), output_dir=str(tmp_path)), tmp_path, earlier)
    assert load_instructions(tmp_path / FILE_NAME) == {
        "oneke": {"ner": {"en": "Find them.", "zh": "旧的。"}, "re": {"zh": "关系。"}}
    }


def test_recipe_paths_are_relative_to_the_recipe_file(tmp_path):
    from knowlm.cli.args import load_recipe
    from knowlm.config import PrepareConfig, PretrainConfig

    (tmp_path / "recipes" / "models" / "tiny").mkdir(parents=True)
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text(
        "data: [../data/a, ../data/b:0.5, /abs/c:2]\noutput_dir: ../runs/x\nmodel: models/tiny\n"
        "tokenizer: org/some-model\ndeepspeed: ds.json\n"
    )
    values = load_recipe(recipe, PretrainConfig)
    base = tmp_path / "recipes"
    assert values["data"] == [str(base / "../data/a"), str(base / "../data/b") + ":0.5", "/abs/c:2"]
    assert values["output_dir"] == str(base / "../runs/x") and values["deepspeed"] == str(base / "ds.json")
    assert values["model"] == str(base / "models/tiny")  # a path there
    assert values["tokenizer"] == "org/some-model"  # not a path there: a Hub id, kept
    prepare = tmp_path / "recipes" / "p.yaml"
    prepare.write_text(
        "source: [wiki=corpus/*.txt:0.7, {name: zh, path: zh/*.jsonl}]\nout: out\ntokenizer: default\n"
    )
    values = load_recipe(prepare, PrepareConfig)
    assert values["source"] == [
        f"wiki={base / 'corpus/*.txt'}:0.7",
        {"name": "zh", "path": str(base / "zh/*.jsonl")},
    ]
    assert values["tokenizer"] == "default"


def test_init_adapter_continues_training_an_adapter(tiny_model_dir, data, tmp_path):
    from safetensors.torch import load_file

    from knowlm.train.sft import finetune

    first = finetune(config(tiny_model_dir, data, tmp_path / "a", freeze_layers=1, lora_r=4, val_size=0))
    # the rank, targets and layers come from the adapter: --lora-r and --freeze-layers do not apply
    more = config(
        tiny_model_dir, data, tmp_path / "b", init_adapter=str(tmp_path / "a"), lora_r=8, val_size=0
    )
    second = finetune(more)
    before, after = (
        load_file(tmp_path / "a/adapter_model.safetensors"),
        load_file(tmp_path / "b/adapter_model.safetensors"),
    )
    assert {n: t.shape for n, t in before.items()} == {n: t.shape for n, t in after.items()}
    assert all(".layers.1." in n for n in after) and any(not torch.equal(before[n], after[n]) for n in after)
    # it starts where the first run ended, not from a fresh adapter
    assert second["log"][0]["loss"] < first["log"][0]["loss"] * 0.5
    with pytest.raises(InputError, match="--init-adapter continues a LoRA adapter"):
        config(
            tiny_model_dir, data, tmp_path / "c", init_adapter=str(tmp_path / "a"), method="full"
        ).validate()
    with pytest.raises(ModelNotFoundError, match=r"--init-adapter .*nowhere: no such directory"):
        finetune(config(tiny_model_dir, data, tmp_path / "d", init_adapter=str(tmp_path / "nowhere")))


def test_a_diverged_run_stops_and_saves_no_final_model(tiny_model_dir, data, tmp_path):
    """A run whose loss turns NaN stops at the first log that shows it and leaves no final adapter
    (a GPU run in bfloat16 once saved an adapter of NaN weights and reported success)."""
    from knowlm.errors import TrainingDivergedError
    from knowlm.train.sft import finetune

    out = tmp_path / "adapter"
    with pytest.raises(TrainingDivergedError, match=r"diverged at step (\d+) .*nan") as caught:
        finetune(config(tiny_model_dir, data, out, learning_rate=1e30, save_steps=2, eval_steps=2))
    assert int(caught.value.args[0].split("step ")[1].split()[0]) < 16  # stopped early
    assert not (out / "adapter_model.safetensors").exists()
    for checkpoint in out.glob("checkpoint-*"):  # those kept were saved before the divergence
        from safetensors.torch import load_file

        assert all(
            torch.isfinite(t).all() for t in load_file(checkpoint / "adapter_model.safetensors").values()
        )

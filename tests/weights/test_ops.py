import json
import shutil
from collections import namedtuple

import pytest
import torch

from knowlm.errors import CorruptFileError, InputError, KnowLMError
from knowlm.weights import ops
from knowlm.weights.checkpoint import CheckpointReader, ShardWriter
from tests.conftest import build_llama, build_tokenizer


def save(model, tokenizer, path, *, shard="40KB", safetensors=True):
    if safetensors:
        model.save_pretrained(path, max_shard_size=shard)
    else:
        model.config.save_pretrained(path)
        torch.save(model.state_dict(), path / "pytorch_model.bin")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tokenizer = build_tokenizer()
    root = tmp_path_factory.mktemp("weights")
    base = build_llama(tokenizer, seed=0)
    tuned = build_llama(tokenizer, seed=0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return {
        "base": save(base, tokenizer, root / "base"),
        "tuned": save(tuned, tokenizer, root / "tuned"),
        "base_bin": save(base, tokenizer, root / "base_bin", safetensors=False),
        "tokenizer": tokenizer,
    }


def state(path):
    reader = CheckpointReader(path)
    return {name: reader.get(name).clone() for name in reader.tensors}


def test_fixture_has_several_shards(models):
    assert len(CheckpointReader(models["base"]).files) >= 3


def test_diff_then_recover_is_exact_in_float32(models, tmp_path):
    ops.diff(
        models["base"],
        models["tuned"],
        tmp_path / "diff",
        shard_bytes=30_000,
        fmt="safetensors",
        resume=False,
        dtype="float32",
    )
    out = ops.recover(
        models["base"],
        tmp_path / "diff",
        tmp_path / "out",
        shard_bytes=50_000,
        fmt="safetensors",
        resume=False,
        dtype="float32",
    )
    recovered, tuned = state(out), state(models["tuned"])
    assert recovered.keys() == tuned.keys()
    assert all(torch.allclose(recovered[k], tuned[k], atol=1e-6, rtol=0) for k in tuned)
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert (out / "model.safetensors.index.json").exists() and not (tmp_path / "out.partial").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # a loadable model


@pytest.mark.parametrize(("dtype", "tol"), [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_half_precision_within_tolerance(models, tmp_path, dtype, tol):
    common = dict(shard_bytes=10**9, fmt="safetensors", resume=False)
    ops.diff(models["base"], models["tuned"], tmp_path / "diff", dtype=dtype, **common)
    out = ops.recover(models["base"], tmp_path / "diff", tmp_path / "out", dtype=dtype, **common)
    recovered, tuned = state(out), state(models["tuned"])
    assert next(iter(recovered.values())).dtype == getattr(torch, dtype)
    worst = max((recovered[k].float() - tuned[k]).abs().max().item() for k in tuned)
    assert worst < tol * max(t.abs().max().item() for t in tuned.values())


def test_bin_inputs(models, tmp_path):
    out = ops.diff(
        models["base_bin"],
        models["tuned"],
        tmp_path / "diff",
        dtype="float32",
        shard_bytes=10**9,
        fmt="bin",
        resume=False,
    )
    assert (out / "pytorch_model.bin").exists()
    back = ops.recover(
        models["base_bin"],
        out,
        tmp_path / "out",
        dtype="float32",
        shard_bytes=10**9,
        fmt="safetensors",
        resume=False,
    )
    assert torch.allclose(state(back)["lm_head.weight"], state(models["tuned"])["lm_head.weight"], atol=1e-6)


def test_mismatched_base_is_refused_before_writing(models, tmp_path):
    other = save(build_llama(models["tokenizer"], hidden_size=96), models["tokenizer"], tmp_path / "other")
    with pytest.raises(InputError, match=r"do not match \(made against another base\?\).*torch.Size|\(64"):
        ops.recover(
            other,
            models["tuned"],
            tmp_path / "out",
            dtype="float32",
            shard_bytes=10**9,
            fmt="safetensors",
            resume=False,
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_killed_recovery_resumes_byte_identical(models, tmp_path, monkeypatch):
    common = dict(dtype="float32", shard_bytes=30_000, fmt="safetensors")
    ops.diff(models["base"], models["tuned"], tmp_path / "diff", resume=False, **common)
    clean = ops.recover(models["base"], tmp_path / "diff", tmp_path / "clean", resume=False, **common)

    real = ShardWriter.write_shard
    calls = []

    def crash_on_third(self, index, tensors):
        calls.append(index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, index, tensors)

    monkeypatch.setattr(ShardWriter, "write_shard", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        ops.recover(models["base"], tmp_path / "diff", tmp_path / "out", resume=False, **common)
    monkeypatch.setattr(ShardWriter, "write_shard", real)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.partial").exists()
    with pytest.raises(InputError, match="add --resume"):
        ops.recover(models["base"], tmp_path / "diff", tmp_path / "out", resume=False, **common)
    out = ops.recover(models["base"], tmp_path / "diff", tmp_path / "out", resume=True, **common)
    names = sorted(p.name for p in clean.iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    for name in names:
        assert (clean / name).read_bytes() == (out / name).read_bytes(), name


def test_verify_detects_a_flipped_byte_and_md5_lists(models, tmp_path):
    out = ops.diff(
        models["base"],
        models["tuned"],
        tmp_path / "diff",
        dtype="float32",
        shard_bytes=10**9,
        fmt="safetensors",
        resume=False,
    )
    assert ops.verify(out) == []
    manifest = json.loads((out / "checksums.json").read_text())
    md5_list = tmp_path / "published.md5"
    md5_list.write_text("".join(f"{m['md5']}  {name}\n" for name, m in manifest["files"].items()))
    assert ops.verify(out, md5_list) == []
    data = bytearray((out / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / "model.safetensors").write_bytes(bytes(data))
    assert ops.verify(out) == ["model.safetensors: SHA-256 differs"]
    assert ops.verify(out, md5_list) == ["model.safetensors: MD5 differs"]


def test_expect_sum(models, tmp_path):
    common = dict(dtype="float32", shard_bytes=10**9, fmt="safetensors", resume=False)
    ops.diff(models["base"], models["tuned"], tmp_path / "diff", **common)
    total = sum(float(t.double().sum()) for t in state(models["tuned"]).values())
    ops.recover(models["base"], tmp_path / "diff", tmp_path / "ok", expect_sum=total, **common)
    with pytest.raises(KnowLMError, match="sum of all recovered weights"):
        ops.recover(models["base"], tmp_path / "diff", tmp_path / "bad", expect_sum=total + 100, **common)
    assert not (tmp_path / "bad").exists()


def test_not_enough_disk(models, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 1000))
    with pytest.raises(InputError, match="not enough disk"):
        ops.diff(
            models["base"],
            models["tuned"],
            tmp_path / "diff",
            dtype="float32",
            shard_bytes=10**9,
            fmt="safetensors",
            resume=False,
        )
    assert not list(tmp_path.iterdir())


def test_missing_and_truncated_shards(models, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(models["base"], broken)
    first = sorted(broken.glob("model-*.safetensors"))[0]
    first.write_bytes(first.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="damaged or truncated"):
        CheckpointReader(broken)
    first.unlink()
    with pytest.raises(InputError, match="missing shards"):
        CheckpointReader(broken)
    with pytest.raises(InputError, match="no such directory"):
        CheckpointReader(tmp_path / "nope")


def test_merge_lora_equals_peft_merge_and_unload(models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(models["base"])
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    expected = peft_model.merge_and_unload().state_dict()
    out = ops.merge_lora(models["base"], adapter, tmp_path / "merged", shard_bytes=30_000)
    merged = state(out)
    assert all(torch.allclose(merged[k], expected[k], atol=1e-6) for k in merged)
    changed = [k for k in merged if not torch.equal(merged[k], state(models["base"])[k])]
    assert sorted(changed) == sorted(
        f"model.layers.{i}.{m}.weight"
        for i in range(2)
        for m in ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")
    )


def _random_adapter(base_dir, path, seed, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(**lora))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.2)
    model.save_pretrained(path)
    return path


def test_mix_lora_update_is_the_weighted_sum_of_the_updates(models, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    modules = ["q_proj", "v_proj", "down_proj"]
    one = _random_adapter(models["base"], tmp_path / "one", 1, r=4, lora_alpha=16, target_modules=modules)
    # another rank, rsLoRA and a per-module rank and alpha: each adapter's own scale must be used
    two = _random_adapter(
        models["base"],
        tmp_path / "two",
        2,
        r=2,
        lora_alpha=3,
        use_rslora=True,
        rank_pattern={"v_proj": 3},
        alpha_pattern={"down_proj": 7},
        target_modules=modules,
    )
    base = state(models["base"])
    deltas = [
        {k: v - base[k] for k, v in state(ops.merge_lora(models["base"], a, tmp_path / f"m{i}")).items()}
        for i, a in enumerate((one, two))
    ]
    # merge-lora scales each module as PEFT does (rank_pattern, alpha_pattern, rsLoRA)
    peft_two = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models["base"]), two)
    two_merged = peft_two.merge_and_unload().state_dict()
    assert all(torch.allclose(base[k] + deltas[1][k], two_merged[k], atol=1e-5) for k in base)
    mixed = ops.mix_lora([one, two], [0.3, -0.7], tmp_path / "mix")
    assert not (tmp_path / "mix.partial").exists()
    assert (tmp_path / "mix" / "adapter_config.json").exists()
    assert [s["weight"] for s in json.loads((mixed / "mix.json").read_text())["mix_lora"]] == [0.3, -0.7]
    merged = state(ops.merge_lora(models["base"], mixed, tmp_path / "merged"))
    changed = 0
    for k, w in merged.items():
        expected = base[k] + 0.3 * deltas[0][k] - 0.7 * deltas[1][k]
        assert torch.allclose(w, expected, atol=1e-5), k
        changed += not torch.equal(w, base[k])
    assert changed == 3 * 2  # three modules in each of the two layers
    # PEFT reads the mixed adapter (rank and alpha per module) to the same weights
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models["base"]), mixed)
    unloaded = peft_model.merge_and_unload().state_dict()
    assert all(torch.allclose(unloaded[k], merged[k], atol=1e-5) for k in merged)


def test_mix_lora_refusals(models, tmp_path, tiny_adapter_dir):
    one = _random_adapter(models["base"], tmp_path / "one", 1, r=4, lora_alpha=8, target_modules=["q_proj"])
    other = _random_adapter(models["base"], tmp_path / "o", 2, r=4, lora_alpha=8, target_modules=["k_proj"])
    with pytest.raises(InputError, match="2 numbers for 3 adapters"):
        ops.mix_lora([one, one, one], [0.5, 0.5], tmp_path / "x")
    with pytest.raises(InputError, match="at least two"):
        ops.mix_lora([one], [1.0], tmp_path / "x")
    with pytest.raises(InputError, match="finite"):
        ops.mix_lora([one, one], [0.5, float("nan")], tmp_path / "x")
    with pytest.raises(InputError, match="same modules"):
        ops.mix_lora([one, other], [0.5, 0.5], tmp_path / "x")
    with pytest.raises(InputError, match="already exists"):
        ops.mix_lora([one, one], [0.5, 0.5], other)
    wider = save(build_llama(models["tokenizer"], hidden_size=96), models["tokenizer"], tmp_path / "wider")
    foreign = _random_adapter(wider, tmp_path / "f", 3, r=4, lora_alpha=8, target_modules=["q_proj"])
    with pytest.raises(InputError, match="different shapes"):
        ops.mix_lora([one, foreign], [0.5, 0.5], tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_mix_lora_cli_averages_by_default(models, tmp_path, capsys):
    from safetensors.torch import load_file

    from knowlm.cli.main import main

    one = _random_adapter(models["base"], tmp_path / "one", 1, r=4, lora_alpha=8, target_modules=["q_proj"])
    two = _random_adapter(models["base"], tmp_path / "two", 2, r=4, lora_alpha=8, target_modules=["q_proj"])
    args = ["weights", "mix-lora", "--adapter", str(one), "--adapter", str(two), "--out"]
    assert main([*args, str(tmp_path / "avg")]) == 0
    config = json.loads((tmp_path / "avg" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 8)
    mixed, first = (
        load_file(tmp_path / "avg" / "adapter_model.safetensors"),
        load_file(one / "adapter_model.safetensors"),
    )
    key = next(k for k in first if "lora_B" in k)
    assert torch.allclose(mixed[key][:, :4], first[key] * 0.5 * 2)  # weight 1/2, scale 8/4
    with pytest.raises(SystemExit) as exit_:
        main([*args, str(tmp_path / "bad"), "--weights", "0.5,x"])
    assert exit_.value.code == 2
    assert "comma-separated list of numbers" in capsys.readouterr().err


def test_merge_lora_refuses_a_foreign_adapter(models, tmp_path, tiny_adapter_dir):
    other = save(build_llama(models["tokenizer"], hidden_size=96), models["tokenizer"], tmp_path / "other")
    with pytest.raises(InputError, match="does not fit the base"):
        ops.merge_lora(other, tiny_adapter_dir, tmp_path / "merged")


def test_cli(models, tmp_path, capsys):
    from knowlm.cli.main import main

    code = main(
        [
            "weights",
            "diff",
            "--base",
            str(models["base"]),
            "--tuned",
            str(models["tuned"]),
            "--out",
            str(tmp_path / "d"),
            "--shard-size",
            "30KB",
        ]
    )
    assert code == 0
    assert main(["weights", "verify", str(tmp_path / "d")]) == 0
    assert (
        main(
            [
                "weights",
                "recover",
                "--base",
                str(tmp_path / "nope"),
                "--diff",
                str(tmp_path / "d"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "d" / "config.json").write_text("{}")
    assert main(["weights", "verify", str(tmp_path / "d")]) == 1
    assert "config.json" in capsys.readouterr().err

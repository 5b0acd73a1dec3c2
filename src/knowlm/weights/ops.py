"""Weight operations that stream tensor by tensor: diff, recover, LoRA merge, verification."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from knowlm.errors import InputError, KnowLMError
from knowlm.weights.checkpoint import (
    DTYPES,
    MANIFEST,
    CheckpointReader,
    ShardWriter,
    check_disk,
    check_same_layout,
    file_digests,
    plan_shards,
)

log = logging.getLogger(__name__)


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[name]


def _progress(total: int, what: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="tensor", desc=what, disable=total < 2)


def _combine(
    a: CheckpointReader,
    b: CheckpointReader,
    out: Path,
    sign: float,
    *,
    dtype: str,
    shard_bytes: int,
    fmt: str,
    resume: bool,
    what: str,
    expect_sum: float | None = None,
) -> Path:
    """out = a + sign * b, tensor by tensor, in ``dtype``."""
    target = _dtype(dtype)
    check_same_layout(a, b, ("--base", "--diff" if sign > 0 else "--tuned"))
    infos = list(a.tensors.values())
    element = target.itemsize
    needed = sum(i.numel * element for i in infos)
    if not resume:
        check_disk(out, needed)
    plan = plan_shards(infos, shard_bytes, element)
    writer = ShardWriter(
        out, plan, fmt=fmt, resume=resume, sources=f"{what}:{a.dir.resolve()}:{b.dir.resolve()}:{dtype}"
    )
    with _progress(len(infos), what) as bar:
        bar.update(sum(len(plan[i]) for i in range(len(plan)) if writer.names[i] in writer.done))
        for index, names in writer.pending():
            shard = {}
            for name in names:
                x, y = a.get(name), b.get(name)
                if x.is_floating_point():
                    shard[name] = (x.to(torch.float32) + sign * y.to(torch.float32)).to(target)
                else:  # integer buffers (rare) are copied from the base
                    shard[name] = x.clone()
                bar.update(1)
            writer.write_shard(index, shard)
    if expect_sum is not None:
        total = sum(s["sum"] for s in writer.tensor_sums.values())
        if abs(total - expect_sum) > max(1e-3 * abs(expect_sum), 1e-2):
            raise KnowLMError(
                f"the sum of all recovered weights is {total:.6f}, expected {expect_sum}; the inputs do not match "
                f"(the output is left in {writer.tmp} for inspection)"
            )
    return writer.finish([b.dir, a.dir])


def diff(base: str | Path, tuned: str | Path, out: str | Path, **options: Any) -> Path:
    """Write ``tuned - base`` (a weight diff that can be published without the base weights)."""
    a, b = CheckpointReader(tuned, "--tuned"), CheckpointReader(base, "--base")
    return _combine(a, b, Path(out), -1.0, what="diff", **options)


def recover(base: str | Path, diff_dir: str | Path, out: str | Path, **options: Any) -> Path:
    """Write ``base + diff``: the tuned model recovered from a published weight diff."""
    a, b = CheckpointReader(base, "--base"), CheckpointReader(diff_dir, "--diff")
    for name in list(b.tensors)[:1]:
        if b.tensors[name].dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise InputError(
                f"--diff {diff_dir}: tensors must be floating point, {name} is {b.tensors[name].dtype}"
            )
    return _combine(a, b, Path(out), 1.0, what="recover", **options)


def _lora_weights(adapter: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    config_path = adapter / "adapter_config.json"
    if not config_path.exists():
        raise InputError(f"--adapter {adapter}: no adapter_config.json")
    config = json.loads(config_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise InputError(
            f"--adapter {adapter}: {config.get('peft_type')} adapters cannot be merged, only LoRA"
        )
    if config.get("use_dora"):
        raise InputError(
            f"--adapter {adapter}: DoRA adapters are not supported by merge-lora; use PEFT's merge_and_unload"
        )
    if (adapter / "adapter_model.safetensors").exists():
        from safetensors.torch import load_file

        weights = load_file(adapter / "adapter_model.safetensors")
    elif (adapter / "adapter_model.bin").exists():
        weights = torch.load(adapter / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise InputError(f"--adapter {adapter}: no adapter_model.safetensors or adapter_model.bin")
    return config, weights


def merge_lora(
    base: str | Path,
    adapter: str | Path,
    out: str | Path,
    *,
    dtype: str | None = None,
    shard_bytes: int = 5 * 2**30,
    fmt: str = "safetensors",
    resume: bool = False,
) -> Path:
    """Merge a PEFT LoRA adapter into the base: W += (alpha / r) * B @ A for each adapted layer."""
    reader = CheckpointReader(base, "--base")
    config, weights = _lora_weights(Path(adapter))
    r = config["r"]
    scale = config["lora_alpha"] / (r**0.5 if config.get("use_rslora") else r)
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    updates: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, a in weights.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        b = weights[key.replace(".lora_A.", ".lora_B.")]
        # base_model.model.<path> -> <path>.weight (PEFT's prefix for causal LMs)
        target = module.removeprefix("base_model.model.") + ".weight"
        updates[target] = (a, b)
    missing = [t for t in updates if t not in reader.tensors]
    if missing:
        raise InputError(
            f"--adapter targets tensors the base does not have: {', '.join(sorted(missing)[:6])}"
        )
    for target, (a, b) in updates.items():
        shape = tuple(reader.tensors[target].shape)
        delta = (b.shape[0], a.shape[1]) if not fan_in_fan_out else (a.shape[1], b.shape[0])
        if shape != delta:
            raise InputError(
                f"--adapter does not fit the base: {target} is {shape}, the LoRA update is {delta}"
            )
    infos = list(reader.tensors.values())
    target_dtype = _dtype(dtype) if dtype else None
    element = target_dtype.itemsize if target_dtype else None
    if not resume:
        check_disk(Path(out), sum(i.nbytes if element is None else i.numel * element for i in infos))
    plan = plan_shards(infos, shard_bytes, element)
    writer = ShardWriter(
        out,
        plan,
        fmt=fmt,
        resume=resume,
        sources=f"merge:{reader.dir.resolve()}:{Path(adapter).resolve()}:{dtype}",
    )
    with _progress(len(infos), "merge-lora") as bar:
        for index, names in writer.pending():
            shard = {}
            for name in names:
                w = reader.get(name)
                out_dtype = target_dtype or w.dtype
                if name in updates:
                    a, b = updates[name]
                    delta = (b.to(torch.float32) @ a.to(torch.float32)) * scale
                    if fan_in_fan_out:
                        delta = delta.T
                    w = w.to(torch.float32) + delta
                shard[name] = w.to(out_dtype) if w.is_floating_point() else w.clone()
                bar.update(1)
            writer.write_shard(index, shard)
    # the adapter's side files first: the tokenizer and IE instruction texts it was trained with
    return writer.finish([Path(adapter), reader.dir])


def verify(directory: str | Path, md5_file: str | Path | None = None) -> list[str]:
    """Problems found: files whose size/SHA-256/MD5 differ from the manifest (or the published MD5 list)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    problems = []
    if md5_file is not None:
        expected = {}
        for number, line in enumerate(Path(md5_file).read_text().splitlines(), 1):
            if line.strip():
                parts = line.split()
                if len(parts) != 2:
                    raise InputError(f"{md5_file} line {number}: expected 'MD5  FILENAME'")
                expected[parts[1].lstrip("*").split("/")[-1]] = parts[0].lower()
        for name, md5 in expected.items():
            path = directory / name
            if not path.exists():
                problems.append(f"{name}: missing")
            elif file_digests(path)["md5"] != md5:
                problems.append(f"{name}: MD5 differs")
        return problems
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise InputError(
            f"{directory}: no {MANIFEST} (written by knowlm weights diff/recover/merge-lora); use --md5 FILE"
        )
    manifest = json.loads(manifest_path.read_text())
    for name, meta in manifest["files"].items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        digests = file_digests(path)
        if digests["size"] != meta["size"]:
            problems.append(f"{name}: {digests['size']} bytes, expected {meta['size']}")
        elif digests["sha256"] != meta["sha256"]:
            problems.append(f"{name}: SHA-256 differs")
    return problems

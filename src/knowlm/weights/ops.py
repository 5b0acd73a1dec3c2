"""Weight operations that stream tensor by tensor: diff, recover, LoRA merge and mix, verification."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
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
    copy_side_files,
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


def _weights_file(adapter: Path) -> Path:
    """A PEFT adapter's weights: adapter_model.safetensors, else the older adapter_model.bin."""
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (adapter / name).exists():
            return adapter / name
    raise InputError(f"--adapter {adapter}: no adapter_model.safetensors or adapter_model.bin")


def _lora_weights(adapter: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An adapter's config and weights, refused unless it is a plain LoRA adapter."""
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
            f"--adapter {adapter}: DoRA adapters are not supported here; use PEFT's merge_and_unload"
        )
    path = _weights_file(adapter)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return config, load_file(path)
    return config, torch.load(path, map_location="cpu", weights_only=True)


def _lora_pairs(weights: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT module name -> (lora_A, lora_B) of an adapter's weights."""
    pairs = {}
    for key, a in weights.items():
        if ".lora_A." in key:
            pairs[key.split(".lora_A.")[0]] = (a, weights[key.replace(".lora_A.", ".lora_B.")])
    return pairs


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's per-module override (``rank_pattern`` / ``alpha_pattern``): the longest key whose pattern
    matches the end of the module's name."""
    for key in sorted(patterns, key=len, reverse=True):
        if re.match(rf"(.*\.)?({key})$", module):
            return patterns[key]
    return default


def _lora_scale(config: dict[str, Any], module: str) -> float:
    """The factor of ``B @ A`` in one module's update: alpha / r (alpha / sqrt(r) with rsLoRA)."""
    r = _pattern_value(config.get("rank_pattern") or {}, module, config["r"])
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
    return float(alpha / (r**0.5 if config.get("use_rslora") else r))


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
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    updates: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    for module, (a, b) in _lora_pairs(weights).items():
        # base_model.model.<path> -> <path>.weight (PEFT's prefix for causal LMs)
        target = module.removeprefix("base_model.model.") + ".weight"
        updates[target] = (a, b, _lora_scale(config, module))
    missing = [t for t in updates if t not in reader.tensors]
    if missing:
        raise InputError(
            f"--adapter targets tensors the base does not have: {', '.join(sorted(missing)[:6])}"
        )
    for target, (a, b, _) in updates.items():
        shape = tuple(reader.tensors[target].shape)
        update = (b.shape[0], a.shape[1]) if not fan_in_fan_out else (a.shape[1], b.shape[0])
        if shape != update:
            raise InputError(
                f"--adapter does not fit the base: {target} is {shape}, the LoRA update is {update}"
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
                    a, b, scale = updates[name]
                    delta = (b.to(torch.float32) @ a.to(torch.float32)) * scale
                    if fan_in_fan_out:
                        delta = delta.T
                    w = w.to(torch.float32) + delta
                shard[name] = w.to(out_dtype) if w.is_floating_point() else w.clone()
                bar.update(1)
            writer.write_shard(index, shard)
    # the adapter's side files first: the tokenizer and IE instruction texts it was trained with
    return writer.finish([Path(adapter), reader.dir])


def mix_lora(
    adapters: list[str | Path],
    weights: list[float],
    out: str | Path,
    *,
    dtype: str | None = None,
) -> Path:
    """One LoRA adapter whose update is exactly the weighted sum of the adapters' updates,
    ``sum_i w_i * scale_i * B_i @ A_i``: the A matrices stacked along the rank, the B matrices scaled by
    ``w_i * scale_i`` side by side; its rank is the sum of the ranks and its alpha equals its rank (scale
    1). Weights that sum to 1 interpolate (an adapter "soup": e.g. two checkpoints of one run); others
    add or subtract (task arithmetic). The adapters must adapt the same modules of the same base; the
    first one's side files (IE instructions, tokenizer) come along. Written to ``OUT.partial``, renamed."""
    paths = [Path(a) for a in adapters]
    out = Path(out)
    if len(paths) < 2:
        raise InputError("mix-lora needs at least two --adapter directories")
    if len(weights) != len(paths):
        raise InputError(f"--weights has {len(weights)} numbers for {len(paths)} adapters; give one each")
    if not all(math.isfinite(w) for w in weights):
        raise InputError(f"--weights must be finite numbers, got {weights}")
    if out.exists():
        raise InputError(f"{out} already exists; choose another --out or remove it")
    loaded = [_lora_weights(p) for p in paths]
    all_pairs = [_lora_pairs(tensors) for _, tensors in loaded]
    first_config, first_pairs = loaded[0][0], all_pairs[0]
    bases = {c.get("base_model_name_or_path") for c, _ in loaded}
    if len(bases) > 1:
        log.warning("the adapters name different base models (%s): mixing them assumes one base", bases)
    for path, (config, _), pairs in zip(paths[1:], loaded[1:], all_pairs[1:], strict=True):
        if pairs.keys() != first_pairs.keys():
            odd = sorted(pairs.keys() ^ first_pairs.keys())[0]
            raise InputError(f"--adapter {path} does not adapt the same modules as {paths[0]} (e.g. {odd})")
        if bool(config.get("fan_in_fan_out")) != bool(first_config.get("fan_in_fan_out")):
            raise InputError(f"--adapter {path}: fan_in_fan_out differs from {paths[0]}'s")
    for path, (config, _) in zip(paths, loaded, strict=True):
        if config.get("modules_to_save"):
            raise InputError(
                f"--adapter {path} saves whole modules ({config['modules_to_save']}); only LoRA layers mix"
            )
    kinds = {t.dtype for _, tensors in loaded for t in tensors.values()}
    out_dtype = _dtype(dtype) if dtype else (kinds.pop() if len(kinds) == 1 else torch.float32)
    mixed: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for module in first_pairs:
        a_parts, b_parts = [], []
        for (config, _), pairs, w in zip(loaded, all_pairs, weights, strict=True):
            a, b = pairs[module]
            a_parts.append(a.to(torch.float32))
            b_parts.append(b.to(torch.float32) * (w * _lora_scale(config, module)))
        if len({a.shape[1] for a in a_parts}) > 1 or len({b.shape[0] for b in b_parts}) > 1:
            raise InputError(f"the adapters' {module} layers have different shapes; they are not of one base")
        a_all, b_all = torch.cat(a_parts, 0), torch.cat(b_parts, 1)
        ranks[module.removeprefix("base_model.model.")] = a_all.shape[0]
        mixed[f"{module}.lora_A.weight"] = a_all.to(out_dtype).contiguous()
        mixed[f"{module}.lora_B.weight"] = b_all.to(out_dtype).contiguous()
    rank = max(set(ranks.values()), key=list(ranks.values()).count)
    odd_ranks = {m: r for m, r in ranks.items() if r != rank}
    config = {
        **first_config,
        "r": rank,
        "lora_alpha": rank,
        "use_rslora": False,
        "rank_pattern": odd_ranks,
        "alpha_pattern": odd_ranks,
    }
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(mixed, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
    sources = [
        {"adapter": str(p), "weight": w, "weights_sha256": file_digests(_weights_file(p))["sha256"]}
        for p, w in zip(paths, weights, strict=True)
    ]
    (tmp / "mix.json").write_text(json.dumps({"mix_lora": sources}, indent=1))
    copy_side_files([paths[0]], tmp)
    os.replace(tmp, out)
    return out


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

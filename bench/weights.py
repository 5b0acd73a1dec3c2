"""Benchmark: weight recovery in bounded memory versus the naive way, on a synthetic multi-GB checkpoint.

Builds a LLaMA-shaped checkpoint (base and diff, float32 safetensors shards of ~500 MB), then runs in
separate processes, measured in one run:
  - `knowlm weights recover` (tensor by tensor, streaming),
  - the naive method as KnowLM's script did it (load both full models, add, save),
  - a plain sequential read of the same input files (the I/O reference).
Reports each one's peak RSS, wall time and throughput (MB of input per second), and writes
bench/results/weights.json.

    python bench/weights.py [--size-gb 2] [--workdir /tmp/knowlm-weights-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHARD_BYTES = 500 * 2**20


def build(directory: Path, size_gb: float, seed: int) -> None:
    """A LLaMA-7B-like layout (hidden 2048 here) with as many layers as fit ``size_gb``."""
    import torch
    from safetensors.torch import save_file

    hidden, inter, vocab = 2048, 5504, 32000
    per_layer = (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden) * 4
    layers = max(1, int((size_gb * 2**30 - 2 * vocab * hidden * 4) / per_layer))
    tensors: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors += [(p + f"self_attn.{m}_proj.weight", (hidden, hidden)) for m in "qkvo"]
        tensors += [
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
            (p + "input_layernorm.weight", (hidden,)),
            (p + "post_attention_layernorm.weight", (hidden,)),
        ]
    tensors += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    directory.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    shards: list[dict] = [{}]
    size = 0
    for name, shape in tensors:
        n = 4
        for d in shape:
            n *= d
        if shards[-1] and size + n > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = shape
        size += n
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(
            {k: torch.randn(s, generator=generator) * 0.02 for k, s in shard.items()}, str(directory / file)
        )
        weight_map.update(dict.fromkeys(shard, file))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (directory / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": layers}))


def naive(base: Path, diff: Path, out: Path) -> None:
    """KnowLM's way: both full models in memory, add, save."""
    from safetensors.torch import load_file, save_file

    model = {}
    for f in sorted(base.glob("*.safetensors")):
        model.update(load_file(f))
    delta = {}
    for f in sorted(diff.glob("*.safetensors")):
        delta.update(load_file(f))
    for name in model:
        model[name] += delta[name]
    del delta
    out.mkdir()
    names = list(model)
    for i in range(0, len(names), 12):
        save_file({n: model[n] for n in names[i : i + 12]}, str(out / f"part-{i:05d}.safetensors"))


def plain_read(paths: list[Path]) -> None:
    for directory in paths:
        for f in sorted(directory.glob("*.safetensors")):
            with f.open("rb") as fh:
                while fh.read(1 << 24):
                    pass


def measure(args: list[str]) -> dict:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, *args])
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{args[-1]} failed with status {status}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def drop_output(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/knowlm-weights-bench"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "weights.json")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.workdir
    base, diff = work / "base", work / "diff"
    if args.step == "recover":
        from knowlm.weights.ops import recover

        recover(
            base,
            diff,
            work / "ours",
            dtype="float32",
            shard_bytes=SHARD_BYTES,
            fmt="safetensors",
            resume=False,
        )
        return
    if args.step == "naive":
        naive(base, diff, work / "naive")
        return
    if args.step == "read":
        plain_read([base, diff])
        return
    if args.step == "build":
        build(base, args.size_gb, 0)
        build(diff, args.size_gb, 1)
        return
    drop_output(work)
    # every step runs in its own process, and this one never imports torch: a child's peak RSS then counts
    # only its own work (a forked child starts out sharing its parent's pages)
    measure(["--workdir", str(work), "--size-gb", str(args.size_gb), "--step", "build"])
    input_mb = sum(f.stat().st_size for d in (base, diff) for f in d.glob("*.safetensors")) / 2**20
    model_mb = input_mb / 2
    rows = {}
    for step in ("read", "recover", "naive"):
        rows[step] = measure(["--workdir", str(work), "--step", step])
        rows[step]["mb_per_s"] = round(input_mb / rows[step]["seconds"], 1)
        print(
            f"{step:<8} {rows[step]['seconds']:7.1f} s  peak RSS {rows[step]['peak_rss_mb']:6d} MB  "
            f"{rows[step]['mb_per_s']:7.1f} MB/s of input",
            flush=True,
        )
    result = {
        "benchmark": "weights",
        "model_mb": round(model_mb),
        "shard_mb": SHARD_BYTES // 2**20,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
        "rss_ratio_naive_vs_ours": round(rows["naive"]["peak_rss_mb"] / rows["recover"]["peak_rss_mb"], 2),
    }
    from knowlm.io import atomic_write

    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    drop_output(work)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`knowlm weights`: diff / recover / merge-lora / mix-lora / verify / export-gguf, streaming one tensor at a time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from knowlm.errors import InputError, KnowLMError
from knowlm.weights.formats import GGUF_TYPES, WEIGHT_DTYPES, WEIGHT_FORMATS

EXAMPLES = """examples:
  knowlm weights recover --base llama-13b-hf --diff zhixi-13b-diff --out zhixi-13b --dtype float16
  knowlm weights verify zhixi-13b
  knowlm weights verify zhixi-13b-diff --md5 zhixi-13b-diff.md5
  knowlm weights merge-lora --base zhixi-13b --adapter zhixi-13b-lora --out zhixi-13b-ie
  knowlm weights mix-lora --adapter run/checkpoint-500 --adapter run/checkpoint-1000 --out soup
  knowlm weights diff --base llama-13b-hf --tuned my-tuned-13b --out my-diff
  knowlm weights export-gguf zhixi-13b-ie --out zhixi-13b-ie-q8_0.gguf --type q8_0

Memory stays bounded by one shard; outputs are built in OUT.partial and renamed when complete;
--resume continues an interrupted run from its finished shards. See docs/weights.md.
"""


def _size(text: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    text = text.strip().lower().removesuffix("b")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 5GB or 500MB") from None


def _weights(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "weights",
        help="recover, diff, merge, verify and export (GGUF) model weights in bounded memory",
        description="Weight tools that stream tensor by tensor (a 13B recovery fits in a few GB of RAM).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ops = parser.add_subparsers(dest="op", metavar="OPERATION", required=True)

    def output_args(p: argparse.ArgumentParser, default_dtype: str | None) -> None:
        p.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
        p.add_argument(
            "--dtype",
            choices=WEIGHT_DTYPES,
            default=default_dtype,
            help=f"precision of the output (default: {default_dtype or 'as the base'})",
        )
        p.add_argument("--shard-size", type=_size, default="5GB", help="largest output shard (default: 5GB)")
        p.add_argument(
            "--format",
            choices=list(WEIGHT_FORMATS),
            default="safetensors",
            help="output format (default: safetensors)",
        )
        p.add_argument(
            "--resume", action="store_true", help="continue an interrupted run from its finished shards"
        )

    recover = ops.add_parser("recover", help="base + diff -> the tuned model")
    recover.add_argument(
        "--base", type=Path, required=True, help="the original base model (e.g. LLaMA-13B, HF format)"
    )
    recover.add_argument("--diff", type=Path, required=True, help="the published weight diff")
    recover.add_argument(
        "--expect-sum", type=float, help="check the sum of all output weights (KnowLM's check)"
    )
    output_args(recover, "float32")
    diff = ops.add_parser("diff", help="tuned - base -> a weight diff to publish")
    diff.add_argument("--base", type=Path, required=True)
    diff.add_argument("--tuned", type=Path, required=True)
    output_args(diff, "float32")
    merge = ops.add_parser("merge-lora", help="merge a PEFT LoRA adapter into the base weights")
    merge.add_argument("--base", type=Path, required=True)
    merge.add_argument("--adapter", type=Path, required=True)
    output_args(merge, None)
    mix = ops.add_parser(
        "mix-lora",
        help="one LoRA adapter whose update is a weighted sum of several adapters' (soups, task arithmetic)",
        description="Mix LoRA adapters of one base exactly: the result's update is the weighted sum of "
        "theirs (its rank is the sum of their ranks). Equal weights average them, e.g. two checkpoints "
        "of a run or runs on different data; a negative weight subtracts one.",
    )
    mix.add_argument(
        "--adapter", type=Path, action="append", required=True, help="an adapter directory (twice or more)"
    )
    mix.add_argument(
        "--weights", type=_weights, help="one number per --adapter, in order (default: equal, summing to 1)"
    )
    mix.add_argument("--out", type=Path, required=True, help="output adapter directory (must not exist)")
    mix.add_argument(
        "--dtype", choices=WEIGHT_DTYPES, help="precision of the output (default: the adapters' own)"
    )
    verify = ops.add_parser(
        "verify", help="check a directory against its checksums.json (or a published MD5 list)"
    )
    verify.add_argument("directory", type=Path)
    verify.add_argument("--md5", type=Path, help="a published list of 'MD5  FILENAME' lines to check instead")
    export = ops.add_parser(
        "export-gguf",
        help="write a GGUF file for llama.cpp (LLaMA-family and Gemma 3 text models)",
        description="Convert a Hugging Face checkpoint to one GGUF file, tensor by tensor, for the llama.cpp "
        "engine (`--engine llamacpp`). 1-D tensors stay float32.",
    )
    export.add_argument(
        "directory", type=Path, help="a Hugging Face model directory (e.g. a merge-lora output)"
    )
    export.add_argument("--out", type=Path, required=True, help="the .gguf file to write")
    export.add_argument(
        "--type",
        choices=GGUF_TYPES,
        default="f16",
        help="storage of the 2-D weights: f16 (default), q8_0 (about half the size) or f32",
    )
    export.add_argument(
        "--tokenizer-from",
        type=Path,
        help="copy the tokenizer metadata from this GGUF (same tokens required); "
        "the default model's own GGUF is used automatically",
    )
    export.add_argument("--name", help="general.name in the GGUF (default: the directory name)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.weights import ops

    if args.op == "verify":
        problems = ops.verify(args.directory, args.md5)
        if problems:
            for problem in problems:
                print(f"FAILED {problem}", file=sys.stderr)
            raise KnowLMError(f"{len(problems)} file(s) in {args.directory} failed verification")
        print(f"{args.directory}: all files verified", file=sys.stderr)
        return 0
    if args.op == "export-gguf":
        from knowlm.weights.gguf_export import export_gguf

        out = export_gguf(
            args.directory, args.out, qtype=args.type, tokenizer_from=args.tokenizer_from, name=args.name
        )
        print(
            f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB); try: knowlm generate --model {out}",
            file=sys.stderr,
        )
        return 0
    if args.op == "mix-lora":
        weights = args.weights or [1 / len(args.adapter)] * len(args.adapter)
        out = ops.mix_lora(args.adapter, weights, args.out, dtype=args.dtype)
        print(f"wrote {out}; try: knowlm extract --model default --adapter {out} ...", file=sys.stderr)
        return 0
    if args.shard_size < 1:
        raise InputError("--shard-size must be positive")
    common = {"shard_bytes": args.shard_size, "fmt": args.format, "resume": args.resume}
    if args.op == "recover":
        out = ops.recover(
            args.base, args.diff, args.out, dtype=args.dtype, expect_sum=args.expect_sum, **common
        )
    elif args.op == "diff":
        out = ops.diff(args.base, args.tuned, args.out, dtype=args.dtype, **common)
    else:
        out = ops.merge_lora(args.base, args.adapter, args.out, dtype=args.dtype, **common)
    print(f"wrote {out} (checksums in {out / 'checksums.json'})", file=sys.stderr)
    return 0

"""`knowlm download`: fetch KnowLM's published ZhiXi weights (or any Hub repo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "download",
        help="download ZhiXi weight diffs and LoRA (or any Hub repo)",
        description="Download from the Hugging Face Hub with resumption. Without REPO: KnowLM's ZhiXi-13B "
        "weight diff and its LoRA adapter (then see docs/weights.md to recover the model).",
        epilog="examples:\n  knowlm download --out weights --fp16\n  knowlm download --out weights --only-lora\n"
        "  knowlm download zjunlp/OneKE --out weights",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("repo", nargs="?", help="a Hub repo id (default: the ZhiXi repos)")
    parser.add_argument("--out", type=Path, required=True, help="directory to download into")
    parser.add_argument("--only-base", action="store_true", help="only the weight diff")
    parser.add_argument("--only-lora", action="store_true", help="only the LoRA adapter")
    parser.add_argument(
        "--fp16", action="store_true", help="the float16 weight diff (24 GB instead of 48 GB)"
    )
    parser.add_argument("--revision", help="a branch, tag or commit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.weights.download import download, zhixi_repos

    repos = (
        [args.repo]
        if args.repo
        else zhixi_repos(only_base=args.only_base, only_lora=args.only_lora, fp16=args.fp16)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for repo in repos:
        print(f"downloading {repo} ...", file=sys.stderr)
        print(f"  -> {download(repo, args.out, revision=args.revision)}", file=sys.stderr)
    return 0

"""Downloading KnowLM's published weights (and any Hub repo) with huggingface_hub, resumably."""

from __future__ import annotations

from pathlib import Path

from knowlm.errors import InputError, KnowLMError

ZHIXI = {
    "diff": "zjunlp/zhixi-13b-diff",
    "diff-fp16": "zjunlp/zhixi-13b-diff-fp16",
    "lora": "zjunlp/zhixi-13b-lora",
}


def zhixi_repos(*, only_base: bool = False, only_lora: bool = False, fp16: bool = False) -> list[str]:
    """The ZhiXi repos KnowLM's download tool fetched, chosen the same way."""
    if only_base and only_lora:
        raise InputError("--only-base and --only-lora exclude each other")
    base = ZHIXI["diff-fp16"] if fp16 else ZHIXI["diff"]
    if only_base:
        return [base]
    if only_lora:
        return [ZHIXI["lora"]]
    return [base, ZHIXI["lora"]]


def download(repo_id: str, out: Path, *, revision: str | None = None) -> Path:
    """Download (or finish downloading) ``repo_id`` into ``out/<repo name>``; interrupted downloads resume."""
    from huggingface_hub import snapshot_download

    target = out / repo_id.split("/")[-1]
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_dir=target))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnowLMError(
            f"could not download {repo_id} ({reason}); check your network and HF_TOKEN, then rerun the same "
            "command: finished files are kept"
        ) from exc

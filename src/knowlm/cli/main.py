"""The `knowlm` command: one entry point, one module per subcommand group."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from knowlm import __version__
from knowlm.errors import InputError, KnowLMError

# subcommand -> module with `register(subparsers)`; each registers its own parser and handler
COMMANDS = {
    "extract": "knowlm.cli.extract",
    "data": "knowlm.cli.data",
    "download": "knowlm.cli.download",
    "eval": "knowlm.cli.evaluate",
    "finetune": "knowlm.cli.finetune",
    "pretrain": "knowlm.cli.pretrain",
    "generate": "knowlm.cli.generate",
    "kg2instruct": "knowlm.cli.kg2instruct",
    "kg": "knowlm.cli.kg",
    "chat": "knowlm.cli.chat",
    "models": "knowlm.cli.models",
    "serve": "knowlm.cli.serve",
    "web": "knowlm.cli.web",
    "weights": "knowlm.cli.weights",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knowlm",
        description="KnowLM: knowledge extraction with large language models.",
        epilog="Run `knowlm COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"knowlm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:  # third-party chatter hides our own messages
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("transformers", "huggingface_hub", "accelerate", "peft"):
            logging.getLogger(name).setLevel(logging.ERROR)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # deprecation notices from the libraries are for their callers (us), not for our users
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        print(f"knowlm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KnowLMError as exc:
        print(f"knowlm {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

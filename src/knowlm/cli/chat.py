"""`knowlm chat`: an interactive multi-turn session with history."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TextIO

from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, sampling_params
from knowlm.config import SamplingParams
from knowlm.errors import InputError
from knowlm.prompts import chat_prompt

HELP = """commands: /reset (forget the conversation), /params (show decoding settings),
/params NAME=VALUE ... (change them, e.g. /params temperature=0.7 top_p=0.9), /exit (or Ctrl-D)"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "chat",
        help="chat with a model interactively",
        description="An interactive multi-turn chat. Uses the model's chat template; models without one "
        "(e.g. KnowLM/ZhiXi) get the conversation in the Alpaca template.\n\n" + HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--system", help="a system prompt that starts the conversation")
    add_model_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(handler=run)


def set_params(params: SamplingParams, assignments: list[str]) -> SamplingParams:
    """Apply ``name=value`` assignments to ``params`` (validated)."""
    types = {f.name: f.type for f in dataclasses.fields(SamplingParams)}
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise InputError(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(types)}")
        kind = str(types[name])
        try:
            if kind == "list[str]":
                changes[name] = [s for s in value.split(",") if s]
            elif kind.startswith("int"):
                changes[name] = None if value in ("", "none") else int(value)
            else:
                changes[name] = float(value)
        except ValueError:
            raise InputError(f"{name}: {value!r} is not a valid {kind}") from None
    return params.replace(**changes).validate()


def conversation_prompt(engine: Any, messages: list[dict[str, str]]) -> tuple[str, list[str]]:
    """The prompt for the next assistant turn, and extra stop strings it needs."""
    return chat_prompt(engine.render_chat, messages)


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    params = sampling_params(args)
    engine = load_engine(args)
    start = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(start)
    interactive = stdin.isatty()
    from knowlm.models.default import model_note

    note = model_note(engine.model_name)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if interactive:
        print(f"chatting with {engine.model_name} ({engine.name}). {HELP}", file=stdout)
    while True:
        if interactive:
            stdout.write("\n>>> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            messages = list(start)
            print("(conversation cleared)", file=stdout)
            continue
        if text.startswith("/params"):
            try:
                params = set_params(params, text.split()[1:])
            except InputError as exc:
                print(f"error: {exc}", file=stdout)
            print(", ".join(f"{k}={v}" for k, v in dataclasses.asdict(params).items()), file=stdout)
            continue
        messages.append({"role": "user", "content": text})
        prompt, stops = conversation_prompt(engine, messages)
        reply = []
        for piece in engine.stream(prompt, params.replace(stop=[*params.stop, *stops])):
            reply.append(piece)
            stdout.write(piece)
            stdout.flush()
        stdout.write("\n")
        messages.append({"role": "assistant", "content": "".join(reply).strip()})
    return 0

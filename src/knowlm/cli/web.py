"""`knowlm web`: the Gradio web UI (generation, instruction and extraction tabs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from knowlm.cli.common import add_model_args, load_engine
from knowlm.errors import InputError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "web",
        help="open the web UI (generation, instruction, extraction and knowledge-graph tabs)",
        description="A Gradio web UI over the model. Binds 127.0.0.1 unless --host says otherwise.",
        epilog="example:\n  knowlm web --model default --port 7860",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = parser.add_argument_group("server")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    server.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    server.add_argument("--auth", metavar="USER:PASSWORD", help="require this login")
    parser.add_argument(
        "--kg",
        metavar="DIR",
        help="a knowledge-graph store (knowlm kg build): adds a tab showing an entity's relations, names, "
        "merges and mentions",
    )
    parser.add_argument(
        "--kg-edit",
        action="store_true",
        help="let the knowledge-graph tab undo merges (opens the store for writing: no other process may "
        "write to it meanwhile); without it the tab shows the `knowlm kg split` command instead",
    )
    add_model_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise InputError("--auth must look like USER:PASSWORD")
        auth = (user, password)
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    if args.kg is not None and not Path(args.kg).is_dir():
        raise InputError(f"--kg {args.kg}: no knowledge graph there (build one with knowlm kg build)")
    if args.kg_edit and args.kg is None:
        raise InputError("--kg-edit needs --kg DIR")
    engine = load_engine(args)
    from knowlm.web.app import build_ui

    ui = build_ui(engine, kg_store=args.kg, kg_edit=args.kg_edit)
    ui.queue().launch(
        server_name=args.host, server_port=args.port, auth=auth, share=False, show_error=True, inbrowser=False
    )
    return 0

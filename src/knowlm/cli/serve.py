"""`knowlm serve`: the HTTP API (KnowLM /generate, OpenAI-compatible /v1/*, /v1/extract)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from knowlm.cli.args import add_dataclass_args, from_args
from knowlm.cli.common import add_model_args, load_engine
from knowlm.config import ServeConfig

EXAMPLES = """examples:
  knowlm serve --model default
  knowlm serve --model ./zhixi-13b --adapter ./ie-lora --engine transformers --api-key secret
  knowlm serve --model ./merged-hf --engine vllm --tensor-parallel-size 2 --host 0.0.0.0

Endpoints: POST /generate, GET /v1/models, POST /v1/completions, POST /v1/chat/completions,
POST /v1/extract, GET /health, GET /metrics, and the OpenAPI docs at /docs. See docs/serving.md.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a model over HTTP (KnowLM and OpenAI-compatible APIs)",
        description="Serve a model over HTTP. Binds 127.0.0.1 unless --host says otherwise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(parser.add_argument_group("server"), ServeConfig)
    add_model_args(parser)
    parser.set_defaults(handler=run)


def serve_config(args: argparse.Namespace) -> ServeConfig:
    config = from_args(ServeConfig, args)
    if config.api_key is None:
        config.api_key = os.environ.get("KNOWLM_API_KEY") or None
    return config.validate()


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from knowlm.serve import Service, create_app

    config = serve_config(args)
    args.batch_size = max(args.batch_size, config.max_batch_size)  # let the engine run whole batches
    engine = load_engine(args)
    service = Service(engine, config, model_name=args.model)
    app = create_app(service)
    exposed = config.host not in ("127.0.0.1", "localhost", "::1")
    if exposed and not config.api_key:
        print(
            f"warning: serving on {config.host} without an API key; anyone who can reach it can use it",
            file=sys.stderr,
        )
    print(
        f"serving {service.model_name} ({engine.name}) on http://{config.host}:{config.port}", file=sys.stderr
    )
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    finally:
        service.close()
    return 0

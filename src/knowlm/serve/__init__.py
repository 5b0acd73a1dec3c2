"""HTTP serving: KnowLM's /generate, an OpenAI-compatible /v1 API and /v1/extract, over any engine."""

from knowlm.serve.app import create_app
from knowlm.serve.service import Service

__all__ = ["Service", "create_app"]

import contextlib
import socket
import threading
import time

import pytest

from knowlm.config import ServeConfig
from knowlm.engines.base import Completion
from knowlm.serve import Service, create_app


@pytest.fixture
def make_client(tiny_engine):
    """Build a TestClient over the tiny model with the given server settings."""
    from fastapi.testclient import TestClient

    services = []

    def make(engine=None, **settings):
        service = Service(engine or tiny_engine, ServeConfig(**settings), model_name="tiny")
        services.append(service)
        return TestClient(create_app(service), raise_server_exceptions=False)

    yield make
    for service in services:
        service.close()


@contextlib.contextmanager
def serve_live(engine, **settings):
    """A real uvicorn server over ``engine`` on 127.0.0.1 and a free port, in a background thread; yields
    its base URL."""
    import uvicorn

    service = Service(engine, ServeConfig(**settings), model_name="tiny")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


@pytest.fixture
def live_server(tiny_engine):
    with serve_live(tiny_engine, api_key="sekret") as url:
        yield url


class GatedEngine:
    """An engine whose generate() waits for a gate; records its calls."""

    name = model_name = "gated"

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        """Set when a generate() call has begun (the worker took a batch)."""
        self.calls = []

    def generate(self, prompts, params):
        self.started.set()
        self.gate.wait(10)
        self.calls.append(list(prompts))
        return [Completion(f"answer to {p}", 1, 1, "stop") for p in prompts]

    def stream(self, prompt, params):
        yield self.generate([prompt], params)[0].text

    def render_chat(self, messages):
        return None

    def count_tokens(self, text):
        return len(text.split()) + 1

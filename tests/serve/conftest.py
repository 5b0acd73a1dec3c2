import contextlib
import socket
import threading
import time

import pytest

from knowlm.config import ServeConfig
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

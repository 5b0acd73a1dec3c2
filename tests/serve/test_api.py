"""Every endpoint through FastAPI's test client with the tiny model."""

import asyncio
import json

import httpx
import pytest

from knowlm.config import SamplingParams, ServeConfig
from knowlm.engines.base import Completion
from knowlm.prompts import AlpacaTemplate
from knowlm.serve import Service, create_app
from tests.serve.conftest import GatedEngine


def greedy(engine, prompt, n):
    return engine.generate([prompt], SamplingParams(max_new_tokens=n))[0]


def test_health_and_models(make_client):
    client = make_client()
    assert client.get("/health").json() == {"status": "ok", "model": "tiny", "engine": "transformers"}
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    assert models["data"][0]["description"] is None


def test_models_says_what_the_default_model_is_for(make_client, tiny_engine, monkeypatch):
    from knowlm.models.default import DEFAULT_MODEL_NOTE

    monkeypatch.setattr(tiny_engine, "model_name", "default")  # create_engine names the default model so
    (card,) = make_client().get("/v1/models").json()["data"]
    assert card["description"] == DEFAULT_MODEL_NOTE and "extraction" in card["description"]


def test_knowlm_generate_uses_alpaca(make_client, tiny_engine):
    client = make_client()
    body = {"instruction": "Name a city.", "input": "Germany", "parameters": {"max_tokens": 6}}
    answer = client.post("/generate", json=body).json()
    expected = greedy(tiny_engine, AlpacaTemplate().format("Name a city.", "Germany"), 6)
    assert answer == {
        "generated_text": expected.text,
        "num_output_tokens_cf": expected.completion_tokens,
        "error": None,
    }


def test_completions_and_usage(make_client, tiny_engine):
    client = make_client()
    body = {"prompt": ["Berlin is", "北京是"], "max_tokens": 5, "temperature": 0}
    data = client.post("/v1/completions", json=body).json()
    assert [c["text"] for c in data["choices"]] == [greedy(tiny_engine, p, 5).text for p in body["prompt"]]
    assert data["object"] == "text_completion" and data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


def _events(response):
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]


def test_streaming_completion_matches(make_client, tiny_engine):
    client = make_client()
    body = {
        "prompt": "Berlin is",
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = client.post("/v1/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
    events = _events(response)
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert text == greedy(tiny_engine, "Berlin is", 8).text
    assert events[-1]["usage"]["completion_tokens"] >= 1


def test_chat_completion_and_stream(make_client, tiny_engine):
    client = make_client()
    messages = [{"role": "user", "content": "hi"}]
    prompt = tiny_engine.render_chat(messages)
    data = client.post(
        "/v1/chat/completions", json={"messages": messages, "max_tokens": 6, "temperature": 0}
    ).json()
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": greedy(tiny_engine, prompt, 6).text,
    }
    response = client.post(
        "/v1/chat/completions", json={"messages": messages, "max_tokens": 6, "temperature": 0, "stream": True}
    )
    events = _events(response)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        == data["choices"][0]["message"]["content"]
    )
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")


class BaseModelChat(GatedEngine):
    """A base model behind a Gemma chat template: its answer runs on into a next turn it writes as plain
    text; it stops at the request's stop strings, as the engines do."""

    name = model_name = "base-chat"
    RUN_ON = "Hello there!\nuser\nSay hello again<end_of_turn>"

    def __init__(self):
        super().__init__()
        self.gate.set()
        self.stops = []

    def render_chat(self, messages):
        turns = "".join(
            f"<start_of_turn>{'model' if m['role'] == 'assistant' else 'user'}\n{m['content']}<end_of_turn>\n"
            for m in messages
        )
        return turns + "<start_of_turn>model\n"

    def generate(self, prompts, params):
        self.stops.append(list(params.stop))
        cuts = [self.RUN_ON.find(s) for s in params.stop if s in self.RUN_ON]
        if not cuts:
            return [Completion(self.RUN_ON, 1, 9, "length") for _ in prompts]
        return [Completion(self.RUN_ON[: min(cuts)], 1, 4, "stop") for _ in prompts]


def test_chat_answer_ends_where_a_base_model_writes_the_next_turn(make_client):
    engine = BaseModelChat()
    client = make_client(engine)
    body = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert engine.stops[-1][:1] == ["<end_of_turn>"] and "user\n" in engine.stops[-1]
    assert choice["message"]["content"].strip() == "Hello there!"
    assert choice["finish_reason"] == "stop"
    # a plain completion is not a chat turn: no turn markers are added to it
    client.post("/v1/completions", json={"prompt": "Say hello", "max_tokens": 32})
    assert engine.stops[-1] == []


def test_extract_endpoint(make_client):
    client = make_client()
    body = {
        "task": "ner",
        "schema": "person,location",
        "texts": ["Berlin is big.", "Ada lives in Paris."],
        "parameters": {"max_tokens": 8},
        "include_outputs": True,
    }
    data = client.post("/v1/extract", json=body).json()
    assert data["task"] == "ner" and [r["text"] for r in data["results"]] == body["texts"]
    assert all({"results", "parse", "outputs"} <= set(r) for r in data["results"])


def test_extract_takes_every_option_of_the_one_definition_grounding_included(
    make_client, tiny_engine, monkeypatch
):
    from knowlm.ie.extractor import Extractor

    seen = []
    real = Extractor.from_config.__func__

    def spy(cls, engine, config, **kwargs):
        seen.append(config)
        return real(cls, engine, config, **kwargs)

    monkeypatch.setattr(Extractor, "from_config", classmethod(spy))
    options = {"constrained": True, "grounded": False, "schema_batch_size": 1}
    body = {"task": "ner", "schema": "person,city", "text": "Ann lives in Rome.", "options": options,
            "parameters": {"max_tokens": 4}}  # fmt: skip
    assert make_client().post("/v1/extract", json=body).status_code == 200
    (config,) = seen
    assert (config.constrained, config.grounded, config.schema_batch_size) == (True, False, 1)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"task": "nope", "schema": "a", "text": "x"}, 400, "unknown task"),
        ({"task": "ner", "schema": "", "text": "x"}, 400, "no schema"),
        ({"task": "ner", "schema": [], "text": "x"}, 400, "the schema is empty"),
        ({"task": "ner", "schema": "a"}, 400, "give either 'text' or 'texts'"),
        ({"task": "ner", "schema": "a", "text": "x", "options": {"colour": 1}}, 400, "options.colour"),
        ({"task": "ner", "schema": "a", "text": "x", "options": {"lang": "fr"}}, 400, "--lang 'fr'"),
        (
            {"task": "ner", "schema": "a", "text": "x", "options": {"max_chunk_tokens": 4}},
            400,
            "max_chunk_tokens",
        ),
        (
            {"task": "ner", "schema": "a", "text": "x", "options": {"schema_file": "/etc/passwd"}},
            400,
            "schema_file",
        ),
    ],
)
def test_extract_errors(make_client, body, status, needle):
    response = make_client().post("/v1/extract", json=body)
    assert response.status_code == status and needle in response.json()["error"]["message"]


def test_api_key(make_client):
    client = make_client(api_key="sekret")
    denied = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert denied.status_code == 401 and "API key" in denied.json()["error"]["message"]
    assert client.get("/metrics").status_code == 401
    assert client.get("/health").status_code == 200  # health checks need no key
    ok = client.post(
        "/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={"Authorization": "Bearer sekret"}
    )
    assert ok.status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": "sekret"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("path", "payload", "status", "needle"),
    [
        ("/v1/completions", b'{"prompt": ', 400, "not valid JSON"),
        ("/v1/completions", b'{"prompt": "x", "max_tokens": 100000}', 400, "exceeds this server's limit"),
        ("/v1/completions", b'{"prompt": "x", "temperature": -1}', 400, "temperature"),
        ("/v1/completions", b'{"prompt": "x", "n": 17}', 400, "n"),
        ("/v1/completions", b'{"max_tokens": 3}', 400, "prompt"),
        ("/v1/chat/completions", b'{"messages": []}', 400, "messages"),
        ("/v1/chat/completions", b'{"messages": [{"role": "robot", "content": "x"}]}', 400, "role"),
        (
            "/v1/completions",
            json.dumps({"prompt": "Berlin " * 400}).encode(),
            400,
            "this server accepts at most 64",
        ),
        ("/v1/completions", json.dumps({"prompt": "x" * 5000}).encode(), 413, "exceeds 4000 bytes"),
        ("/generate", b'{"instruction": ""}', 400, "instruction"),
    ],
)
def test_bad_requests_and_limits(make_client, path, payload, status, needle):
    client = make_client(max_body_bytes=4000, max_prompt_tokens=64)
    response = client.post(path, content=payload, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    body = response.json()
    message = body["error"] if path == "/generate" else body["error"]["message"]
    assert needle in message
    assert client.get("/health").status_code == 200  # the server stays up
    assert client.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2}).status_code == 200


def test_metrics_count_requests_and_tokens(make_client):
    client = make_client()
    client.post("/v1/completions", json={"prompt": "Berlin is", "max_tokens": 3})
    text = client.get("/metrics").text
    assert 'knowlm_requests_total{route="/v1/completions",status="200"} 1.0' in text
    assert "knowlm_generated_tokens_total" in text and "knowlm_queue_depth" in text


def test_full_queue_answers_503_with_retry_after(make_client):
    engine = GatedEngine()
    client = make_client(engine, max_queue=2, max_batch_size=1)
    service = client.app.state.service
    service.engine.submit(["first"], SamplingParams())
    assert engine.started.wait(5)  # taken by the worker, which now waits on the gate
    service.engine.submit(["a", "b"], SamplingParams())  # fills the queue
    response = client.post("/v1/completions", json={"prompt": "c", "max_tokens": 1})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "queue is full" in response.json()["error"]["message"]
    engine.gate.set()


def test_concurrent_requests_are_batched_and_answered_correctly(tiny_engine):
    service = Service(tiny_engine, ServeConfig(max_batch_size=8, batch_wait_ms=300), model_name="tiny")
    app = create_app(service)
    prompts = [
        "Berlin is",
        "Paris is",
        "北京是",
        "The quick brown fox",
        "Apple was",
        "Knowledge graphs",
        "浙江大学",
        "0123",
    ]

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            requests = [
                client.post("/v1/completions", json={"prompt": p, "max_tokens": 6, "temperature": 0})
                for p in prompts
            ]
            return await asyncio.gather(*requests)

    try:
        responses = asyncio.run(run())
        texts = [r.json()["choices"][0]["text"] for r in responses]
        assert texts == [greedy(tiny_engine, p, 6).text for p in prompts]
        assert service.engine.engine_calls < len(prompts)
    finally:
        service.close()


def test_cors_is_off_unless_configured(make_client):
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    closed = make_client().options("/v1/completions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = make_client(cors_origins=["http://app.example"]).options("/v1/completions", headers=preflight)
    assert opened.headers["access-control-allow-origin"] == "http://app.example"


def test_serve_cli_validates_before_loading(capsys, monkeypatch):
    from knowlm.cli.main import build_parser, main
    from knowlm.cli.serve import serve_config

    code = main(["serve", "--port", "0", "--model", "./missing"])
    err = capsys.readouterr().err
    assert code == 2 and "--port must be in 1..65535" in err
    monkeypatch.setenv("KNOWLM_API_KEY", "from-env")
    args = build_parser().parse_args(["serve"])
    config = serve_config(args)
    assert config.api_key == "from-env" and config.host == "127.0.0.1"

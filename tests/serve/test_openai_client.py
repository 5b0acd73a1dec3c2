"""The official openai client, unchanged, against a live server on 127.0.0.1."""

import openai
import pytest

from knowlm.config import SamplingParams


def test_openai_client_end_to_end(live_server, tiny_engine):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="sekret", max_retries=0)
    assert [m.id for m in client.models.list()] == ["tiny"]

    expected = tiny_engine.generate(["Berlin is"], SamplingParams(max_new_tokens=6))[0]
    done = client.completions.create(model="tiny", prompt="Berlin is", max_tokens=6, temperature=0)
    assert (
        done.choices[0].text == expected.text and done.usage.completion_tokens == expected.completion_tokens
    )

    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=0
    )
    prompt = tiny_engine.render_chat([{"role": "user", "content": "hi"}])
    assert (
        chat.choices[0].message.content
        == tiny_engine.generate([prompt], SamplingParams(max_new_tokens=6))[0].text
    )

    pieces = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=6,
            temperature=0,
            stream=True,
        )
        if c.choices
    ]
    assert "".join(pieces) == chat.choices[0].message.content

    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="tiny", prompt="Berlin is", max_tokens=6, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == expected.text


def test_openai_client_sees_auth_and_validation_errors(live_server):
    bad_key = openai.OpenAI(base_url=f"{live_server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="sekret", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.completions.create(model="tiny", prompt="x", n=2)

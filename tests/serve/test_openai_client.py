"""The official openai client, unchanged, against a live server on 127.0.0.1."""

import openai
import pytest

from knowlm.config import SamplingParams
from tests.serve.conftest import serve_live


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
    with pytest.raises(openai.BadRequestError, match="frequency_penalty"):
        client.completions.create(model="tiny", prompt="x", frequency_penalty=0.5)


def test_n_sampled_choices_through_the_official_client(live_server):
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="sekret", max_retries=0)
    kwargs = {"model": "tiny", "max_tokens": 12, "temperature": 1.5, "seed": 7}
    first = client.completions.create(prompt=["Berlin is", "Paris is"], n=3, **kwargs)
    assert [c.index for c in first.choices] == list(range(6))  # prompt i, choice j -> index i * n + j
    assert len({c.text for c in first.choices[:3]}) == 3  # each choice samples with its own seed
    again = client.completions.create(prompt=["Berlin is", "Paris is"], n=3, **kwargs)
    assert [c.text for c in again.choices] == [c.text for c in first.choices]
    chat = client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], n=2, **kwargs)
    assert [c.index for c in chat.choices] == [0, 1] and chat.usage.completion_tokens > 0
    streamed: dict[int, str] = {}
    for chunk in client.chat.completions.create(
        messages=[{"role": "user", "content": "hi"}], n=2, stream=True, **kwargs
    ):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + (c.delta.content or "")
    assert streamed == {c.index: c.message.content for c in chat.choices}


@pytest.mark.requires_llamacpp
def test_n_choices_on_the_llamacpp_engine_are_independent_samples(tiny_model_dir, tmp_path):
    """The default engine once gave n identical choices: the n runs shared one sampling seed."""
    from knowlm.engines.llamacpp import is_llamacpp_available

    if not is_llamacpp_available():
        pytest.skip("llama-cpp-python is not installed")
    from knowlm.config import ModelConfig
    from knowlm.engines import create_engine
    from knowlm.weights.gguf_export import export_gguf

    gguf = export_gguf(tiny_model_dir, tmp_path / "tiny.gguf", qtype="f16")
    engine = create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=256, batch_size=4))
    with serve_live(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        kwargs = {"model": "tiny", "max_tokens": 16, "temperature": 1.0, "n": 3}
        free = client.completions.create(prompt="Berlin is", **kwargs)
        assert len({c.text for c in free.choices}) == 3
        chat = client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], **kwargs)
        assert len({c.message.content for c in chat.choices}) == 3
        seeded = client.completions.create(prompt="Berlin is", seed=9, **kwargs)
        again = client.completions.create(prompt="Berlin is", seed=9, **kwargs)
        assert [c.text for c in again.choices] == [c.text for c in seeded.choices]
    engine.close()


@pytest.mark.slow
@pytest.mark.requires_llamacpp
def test_n_choices_on_the_default_model_differ_and_a_seed_repeats_them():
    """On the default engine and model: a request's n choices go to the engine together, so a seeded
    request composes its batch alike and repeats exactly; unseeded choices differ."""
    from knowlm.engines.llamacpp import is_llamacpp_available

    if not is_llamacpp_available():
        pytest.skip("llama-cpp-python is not installed")
    from knowlm.config import ModelConfig
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model="default", engine="llamacpp"))
    with serve_live(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        kwargs = {
            "model": "tiny",
            "prompt": "Knowledge graphs are",
            "max_tokens": 16,
            "temperature": 1.0,
            "n": 3,
        }
        assert len({c.text for c in client.completions.create(**kwargs).choices}) == 3
        seeded = [[c.text for c in client.completions.create(seed=4, **kwargs).choices] for _ in range(3)]
        assert seeded[0] == seeded[1] == seeded[2] and len(set(seeded[0])) == 3
        # chat is not what the model is for, and /v1/models says so; whatever a base model writes, no
        # answer holds a next turn (where an answer written as plain text ends: tests/serve/test_api.py)
        (card,) = client.models.list().data
        assert "made for extraction" in card.model_extra["description"]
        for seed in range(4):  # greedy, then sampled
            chat = client.chat.completions.create(
                model="default",
                messages=[{"role": "user", "content": "Say hello"}],
                max_tokens=160,
                temperature=0 if seed == 0 else 1.0,
                seed=seed,
            )
            reply = chat.choices[0]
            assert "user\n" not in reply.message.content and "<start_of_turn>" not in reply.message.content
            assert reply.finish_reason in ("stop", "length")
    engine.close()

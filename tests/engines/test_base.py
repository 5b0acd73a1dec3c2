import pytest

from knowlm.config import ModelConfig
from knowlm.engines import create_engine, find_stop, pick_engine, register_engine
from knowlm.engines.base import StopStreamer
from knowlm.errors import InputError


def test_find_stop_returns_earliest():
    assert find_stop("abc END xyz STOP", ["STOP", "END"]) == 4
    assert find_stop("nothing here", ["STOP"]) is None
    assert find_stop("text", []) is None


def _stream(deltas, stops):
    streamer = StopStreamer(stops)
    out = [streamer.feed(d) for d in deltas]
    out.append(streamer.flush())
    return out, streamer.stopped


def test_stop_streamer_holds_back_partial_stop_strings():
    out, stopped = _stream(["Hello ", "wor", "ld. ##", "# Instr", "uction: more"], ["### Instruction"])
    assert "".join(out) == "Hello world. "
    assert stopped
    assert out[2] == "ld. "  # "##" is held back: it may begin the stop string


def test_stop_streamer_releases_false_alarms():
    out, stopped = _stream(["a #", "# b", " c"], ["###"])
    assert "".join(out) == "a ## b c"
    assert not stopped


def test_stop_streamer_without_stops_passes_everything():
    out, _ = _stream(["x", "y"], [])
    assert out == ["x", "y", ""]


def test_pick_engine():
    assert pick_engine(ModelConfig(model="some/dir")) == "transformers"
    assert pick_engine(ModelConfig(model="m.gguf", engine="transformers")) == "transformers"
    assert pick_engine(ModelConfig(model="default", adapter="x")) == "transformers"


def test_unknown_engine_is_input_error():
    with pytest.raises(InputError, match="--engine"):
        create_engine(ModelConfig(engine="nope"))


def test_register_engine_validates():
    with pytest.raises(ValueError, match="already registered"):
        register_engine("transformers", "x:y")
    with pytest.raises(ValueError, match="module:attr"):
        register_engine("mine", "no_colon")


def test_default_means_base_plus_shipped_adapter_unless_opted_out(monkeypatch, tmp_path):
    from knowlm.config import ModelConfig
    from knowlm.engines.base import with_default_adapter
    from knowlm.models import default

    adapter = tmp_path / "adapter"
    monkeypatch.setattr(default, "default_adapter", lambda: adapter)
    monkeypatch.setattr(default, "default_ie_gguf", lambda a: tmp_path / f"merged-{a.name}.gguf")
    plain = ModelConfig(model="default")
    assert with_default_adapter(plain, "transformers").adapter == str(adapter)
    merged = with_default_adapter(plain, "llamacpp")
    assert merged.model == str(tmp_path / "merged-adapter.gguf") and merged.adapter is None
    opted_out = ModelConfig(model="default", no_adapter=True)
    assert with_default_adapter(opted_out, "transformers") == opted_out
    own = ModelConfig(model="default", adapter="mine")
    assert with_default_adapter(own, "transformers").adapter == "mine"
    other = ModelConfig(model="some/model")
    assert with_default_adapter(other, "transformers") == other
    monkeypatch.setattr(default, "default_adapter", lambda: None)  # an installation without the adapter
    assert with_default_adapter(plain, "llamacpp") == plain


def test_token_pieces_join_to_the_text_and_a_split_character_goes_to_its_last_token():
    from knowlm.engines.base import token_pieces

    vocab = {1: b"Ma ", 2: "云".encode()[:2], 3: "云".encode()[2:], 4: b"!"}

    def decode(tokens: list[int]) -> str:
        return b"".join(vocab[t] for t in tokens).decode("utf-8", errors="replace")

    pieces = token_pieces(decode, [1, 2, 3, 4], [-0.1, -0.2, -0.3, -0.4])
    assert pieces == [("Ma ", -0.1), ("", -0.2), ("云", -0.3), ("!", -0.4)]
    broken = token_pieces(decode, [1, 2], [-0.1, -0.2])  # a character never completed: still joins
    assert "".join(p for p, _ in broken) == decode([1, 2])

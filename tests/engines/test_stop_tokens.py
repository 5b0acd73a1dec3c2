"""Stops that are one special token (a chat template's turn markers) end generation on every engine, although
engines leave special tokens out of their text, so the stop string itself is never seen."""

import pytest

from knowlm.config import SamplingParams
from tests.conftest import build_llama, build_tokenizer, local_engines

PROMPT = "Knowledge graphs store facts as"
MARKER = "<pad>"  # a special token of the tiny tokenizer, standing in for e.g. Gemma's <start_of_turn>


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny model, edited so that its first greedy token after PROMPT is the special token MARKER."""
    import torch

    tokenizer = build_tokenizer()
    model = build_llama(tokenizer)
    marker = tokenizer.convert_tokens_to_ids(MARKER)
    with torch.no_grad():
        logits = model(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1]
        best = int(logits.argmax())
        # the marker's output row becomes the best token's, scaled so that its logit is the larger one
        model.lm_head.weight[marker] = model.lm_head.weight[best] * (2.0 if logits[best] > 0 else 0.5)
        assert int(model(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1].argmax()) == marker
    directory = tmp_path_factory.mktemp("marker-model")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return local_engines(directory, tmp_path_factory.mktemp("gguf"))


@pytest.mark.parametrize("name", ["transformers", "llamacpp"])
def test_a_special_token_stop_ends_generation(engines: dict, name: str):
    if name not in engines:
        pytest.skip("llama-cpp-python is not installed")
    engine = engines[name]
    free = SamplingParams(max_new_tokens=6)
    ran_on = engine.generate([PROMPT], free)[0]
    assert ran_on.finish_reason == "length" and ran_on.text  # the marker is emitted, dropped, and ignored
    stopped = engine.generate([PROMPT], free.replace(stop=[MARKER]))[0]
    assert (stopped.text, stopped.finish_reason) == ("", "stop")
    assert "".join(engine.stream(PROMPT, free.replace(stop=[MARKER]))) == ""
    # ordinary stop strings still work as text
    cut = ran_on.text.strip()[:2]
    assert cut not in engine.generate([PROMPT], free.replace(stop=[cut]))[0].text


def test_sampling_moves_the_markers_probability_to_the_end_token():
    import numpy as np

    from knowlm.engines.llamacpp_scheduler import stop_to_eos

    scores = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    out = scores.copy()
    stop_to_eos(out, [2, 3], eos=1)
    assert out[2] == out[3] == -np.inf and out[0] == scores[0]
    assert np.isclose(np.exp(out[1]), 0.9)  # P(stop) = P(eos) + P(markers)


def test_a_grammar_bitmask_keeps_exactly_its_tokens():
    import numpy as np

    from knowlm.engines.llamacpp_scheduler import allowed_tokens, keep_only

    rng = np.random.default_rng(0)
    for density in (0.0, 0.001, 0.5):
        bits = rng.random(1000) < density
        words = np.packbits(np.append(bits, np.zeros(24, bool)), bitorder="little").view(np.int32)
        assert allowed_tokens(words).tolist() == np.flatnonzero(bits).tolist()
        row = rng.standard_normal(990).astype(np.float32)  # a row narrower than the mask
        kept = row.copy()
        keep_only(row, allowed_tokens(words))
        expect = np.where(bits[:990], kept, -np.inf)
        assert np.array_equal(row, expect)

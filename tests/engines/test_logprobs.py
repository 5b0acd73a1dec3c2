"""Every engine reports each generated token's log-probability under the model itself: the numbers the
model's own forward pass gives, whatever sampling settings or constraint masks chose the token."""

import math

import pytest

from knowlm.config import SamplingParams
from tests.conftest import local_engines

PROMPT = "Knowledge graphs store facts as"


@pytest.fixture(scope="module")
def engines(tiny_model_dir, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return local_engines(tiny_model_dir, tmp_path_factory.mktemp("gguf"))


def model_logprobs(model_dir, prompt_ids: list[int], generated: list[int]) -> list[float]:
    """The reference: one forward pass of the transformers model over prompt + generated tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([prompt_ids + generated])
    with torch.no_grad():
        logits = model(ids).logits[0].float().log_softmax(-1)
    start = len(prompt_ids) - 1
    return [float(logits[start + i, t]) for i, t in enumerate(generated)]


@pytest.mark.parametrize("name", ["transformers", "llamacpp"])
def test_logprobs_are_the_models_own_and_their_pieces_join_to_the_text(engines, tiny_model_dir, name):
    if name not in engines:
        pytest.skip("llama-cpp-python is not installed")
    from transformers import AutoTokenizer

    done = engines[name].generate([PROMPT], SamplingParams(max_new_tokens=8))[0]
    assert done.logprobs is not None and len(done.logprobs) == done.completion_tokens == 8
    assert "".join(piece for piece, _ in done.logprobs) == done.text
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    generated = tokenizer(PROMPT + done.text)["input_ids"][len(prompt_ids) :]
    if len(generated) == len(done.logprobs):  # the text re-encodes to the same tokens
        expected = model_logprobs(tiny_model_dir, prompt_ids, generated)
        assert [lp for _, lp in done.logprobs] == pytest.approx(expected, abs=2e-2)
    # greedy: every chosen token was the most likely one, so each probability is the largest of its step
    assert all(lp <= 0 and math.exp(lp) > 1 / 400 for _, lp in done.logprobs)


@pytest.mark.parametrize("name", ["transformers", "llamacpp"])
def test_a_constrained_token_keeps_the_models_own_probability(engines, name):
    """A grammar that forces text the model would not write: the forced tokens are reported as unlikely
    (the raw distribution), not as certain (the masked one)."""
    if name not in engines:
        pytest.skip("llama-cpp-python is not installed")
    engine = engines[name]
    free = engine.generate([PROMPT], SamplingParams(max_new_tokens=4))[0]
    forced_text = "zzzz" if not free.text.startswith("zz") else "qqqq"
    forced = engine.generate([PROMPT], SamplingParams(max_new_tokens=8, grammar=f'start: "{forced_text}"'))[0]
    assert forced.text == forced_text and forced.logprobs is not None
    assert "".join(p for p, _ in forced.logprobs) == forced_text
    assert min(lp for _, lp in forced.logprobs) < max(lp for _, lp in free.logprobs) - 1.0


def test_sampled_tokens_carry_logprobs_too(engines):
    engine = engines["transformers"]
    done = engine.generate([PROMPT], SamplingParams(max_new_tokens=6, temperature=1.0, seed=3))[0]
    assert done.logprobs is not None and "".join(p for p, _ in done.logprobs) == done.text
    assert all(lp <= 0 for _, lp in done.logprobs)

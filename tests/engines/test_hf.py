import pytest

from knowlm.config import SamplingParams
from knowlm.engines.base import chat_renderer
from knowlm.errors import InputError
from tests.engines.item_guard import check_lists_close_on_repeat

PROMPTS = [
    "Berlin is the capital of",
    "Knowledge graphs store facts as triples: subject,",
    "北京是",
    "The quick brown fox",
    "Apple was founded by Steve Jobs in California in",
]


def test_batched_equals_one_by_one_greedy(tiny_engine):
    params = SamplingParams(max_new_tokens=12)
    batched = tiny_engine.generate(PROMPTS, params)  # batch_size 4: two batches, left padding
    single = [tiny_engine.generate([p], params)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [tiny_engine.count_tokens(p) for p in PROMPTS]
    assert all(c.completion_tokens >= 1 for c in batched)


def test_length_finish_reason(tiny_engine):
    (done,) = tiny_engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=5))
    assert done.finish_reason in ("length", "stop")
    if done.finish_reason == "length":
        assert done.completion_tokens == 5


def test_stop_strings_cut_the_text(tiny_engine):
    (full,) = tiny_engine.generate([PROMPTS[1]], SamplingParams(max_new_tokens=24))
    assert len(full.text) > 4
    stop = full.text[2:4]  # a string that certainly appears in the greedy continuation
    (cut,) = tiny_engine.generate([PROMPTS[1]], SamplingParams(max_new_tokens=24, stop=[stop]))
    assert cut.text == full.text[: full.text.find(stop)]
    assert stop not in cut.text and cut.finish_reason == "stop"
    assert cut.completion_tokens <= full.completion_tokens


@pytest.mark.parametrize("use_stop", [False, True])
def test_stream_matches_generate(tiny_engine, use_stop):
    params = SamplingParams(max_new_tokens=20)
    if use_stop:
        text = tiny_engine.generate([PROMPTS[2]], params)[0].text
        # a stop that first occurs in the second half: the streamer (which emits at word boundaries) has
        # given several pieces before it
        at = next(i for i in range(len(text) // 2, len(text) - 2) if text.find(text[i : i + 2]) == i)
        params = params.replace(stop=[text[at : at + 2]])
    (expected,) = tiny_engine.generate([PROMPTS[2]], params)
    pieces = list(tiny_engine.stream(PROMPTS[2], params))
    assert len(pieces) > 1  # really streamed, not one final chunk
    assert "".join(pieces) == expected.text


def test_stream_can_be_abandoned(tiny_engine):
    stream = tiny_engine.stream(PROMPTS[0], SamplingParams(max_new_tokens=200))
    next(stream)
    stream.close()  # stops the generation thread; the engine stays usable
    assert tiny_engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=3))[0].completion_tokens >= 1


def test_seeded_sampling_is_reproducible(tiny_engine):
    params = SamplingParams(max_new_tokens=16, temperature=1.5, top_p=0.95, top_k=50, seed=7)
    a = tiny_engine.generate(PROMPTS[:2], params)
    b = tiny_engine.generate(PROMPTS[:2], params)
    c = tiny_engine.generate(PROMPTS[:2], params.replace(seed=8))
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]


def test_beam_search_scores_at_least_greedy(tiny_engine):
    import torch

    prompt = PROMPTS[0]
    greedy = tiny_engine.generate([prompt], SamplingParams(max_new_tokens=6))[0]
    beams = tiny_engine.generate([prompt], SamplingParams(max_new_tokens=6, num_beams=4))[0]

    def logprob(text):
        tok, model = tiny_engine.tokenizer, tiny_engine.model
        prompt_ids = tok(prompt)["input_ids"]
        ids = prompt_ids + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        return sum(logits[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))

    assert beams.text
    if beams.completion_tokens == greedy.completion_tokens == 6:
        assert logprob(beams.text) >= logprob(greedy.text) - 1e-3


def test_invalid_params_are_rejected(tiny_engine):
    with pytest.raises(InputError, match="temperature"):
        tiny_engine.generate(["x"], SamplingParams(temperature=-1))
    with pytest.raises(InputError, match="beam"):
        list(tiny_engine.stream("x", SamplingParams(num_beams=2)))


def test_chat_rendering_drops_the_duplicate_bos(tiny_engine):
    render = chat_renderer(tiny_engine)
    assert render is not None
    text = render([{"role": "user", "content": "hi"}])
    assert text == "<|user|>\nhi\n<|assistant|>\n"
    assert tiny_engine.tokenizer(text)["input_ids"].count(tiny_engine.tokenizer.bos_token_id) == 1


def test_extraction_answers_close_a_list_when_it_repeats_an_item(tiny_engine):
    pytest.importorskip("llguidance")
    check_lists_close_on_repeat(tiny_engine)

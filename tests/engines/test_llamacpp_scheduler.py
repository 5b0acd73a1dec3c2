"""Multi-sequence decoding on the llama.cpp engine: many prompts in one batch, each with its own settings."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.llamacpp import is_llamacpp_available
from knowlm.errors import InputError
from tests.engines.item_guard import check_lists_close_on_repeat

pytestmark = [
    pytest.mark.requires_llamacpp,
    pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed"),
]

PROMPTS = [
    "Knowledge graphs store facts as",
    "Berlin is the capital of",
    "Apple was founded by",
    "北京是中国的首都。",
    "The quick brown fox",
    "Knowledge graphs store facts as triples:",
]
GREEDY = SamplingParams(max_new_tokens=16)


@pytest.fixture(scope="module")
def gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from knowlm.weights.gguf_export import export_gguf

    return export_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf", qtype="f16")


def engine_of(gguf: Path, batch_size: int, n_ctx: int = 256):
    from knowlm.engines import create_engine

    return create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=n_ctx, batch_size=batch_size))


@pytest.fixture(scope="module")
def engine(gguf: Path):
    engine = engine_of(gguf, batch_size=4)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def alone(gguf: Path) -> list[str]:
    """Each prompt's greedy text on an engine that decodes one sequence at a time."""
    single = engine_of(gguf, batch_size=1)
    texts = [single.generate([p], GREEDY)[0].text for p in PROMPTS]
    single.close()
    return texts


def test_many_sequences_give_the_greedy_text_of_one_at_a_time(engine, alone):
    before = dict(engine.scheduler.stats)
    done = engine.generate(PROMPTS, GREEDY)  # 6 prompts on 4 slots: two take freed slots mid-run
    assert [c.text for c in done] == alone
    assert all(c.completion_tokens == 16 and c.finish_reason == "length" for c in done)
    steps = engine.scheduler.stats["decode_calls"] - before["decode_calls"]
    assert steps < 6 * 16  # sequences shared forward passes
    assert engine.scheduler.stats["reused_tokens"] > before["reused_tokens"]  # the shared prefix, once


def test_a_cached_prefix_gives_the_same_text_as_a_fresh_context(gguf, engine, alone):
    # the last prompt extends the first: its slot starts from the first one's cached tokens
    engine.generate([PROMPTS[0]], GREEDY)
    assert engine.generate([PROMPTS[5]], GREEDY)[0].text == alone[5]
    assert engine.generate([PROMPTS[0]], GREEDY)[0].text == alone[0]


def test_stop_strings_and_max_tokens_are_per_sequence(engine, alone):
    cut = alone[1][3:6]
    params = [GREEDY.replace(max_new_tokens=5), GREEDY.replace(stop=[cut]), GREEDY]
    short, stopped, full = engine.generate_each(PROMPTS[:3], params)
    assert (short.completion_tokens, short.finish_reason) == (5, "length")
    assert stopped.text == alone[1][: alone[1].index(cut)] and stopped.finish_reason == "stop"
    assert full.text == alone[2]


def test_each_sequence_keeps_its_own_grounding_constraint(engine):
    pytest.importorskip("llguidance")
    from knowlm.ie.grammar import answer_grammar

    shape = {
        "type": "object",
        "properties": {"person": {"type": "array", "items": {"type": "string"}}},
        "required": ["person"],
        "additionalProperties": False,
    }
    texts = ["Steve Jobs founded Apple.", "马云在杭州创立了阿里巴巴。", "Berlin is in Germany."]
    free = SamplingParams(max_new_tokens=48, temperature=1.0, seed=3)
    params = [free.replace(grammar=answer_grammar(shape, t)) for t in texts]
    done = engine.generate_each([f"Text: {t}\nAnswer:" for t in texts], params)
    for text, completion in zip(texts, done, strict=True):
        if completion.finish_reason == "stop":
            answer = json.loads(completion.text)
            assert all(name in text for name in answer["person"])  # pieces of its own text only
        assert completion.text.startswith('{"person": [')


def test_a_failing_prompt_fails_alone(engine, alone):
    too_long = "fox " * 400  # beyond the 256-token context
    futures = [engine.submit(p, GREEDY) for p in (PROMPTS[0], too_long, PROMPTS[1])]
    assert futures[0].result().text == alone[0] and futures[2].result().text == alone[1]
    with pytest.raises(InputError, match="exceed the context"):
        futures[1].result()
    pytest.importorskip("llguidance")
    bad = GREEDY.replace(grammar="start: (((")
    with pytest.raises(InputError, match="grammar"):
        engine.generate_each([PROMPTS[0], PROMPTS[1]], [GREEDY, bad])
    assert engine.generate([PROMPTS[2]], GREEDY)[0].text == alone[2]  # the engine carries on


def test_unseeded_sequences_sample_independently_and_seeds_repeat(engine):
    free = SamplingParams(max_new_tokens=24, temperature=1.0)
    assert len({c.text for c in engine.generate([PROMPTS[0]] * 3, free)}) == 3
    seeded = free.replace(seed=5)
    first = engine.generate([PROMPTS[0]] * 3, seeded)
    assert len({c.text for c in first}) == 1  # one seed, one sample, whatever shares the batch
    again = engine.generate_each([PROMPTS[1], PROMPTS[0]], [free, seeded])
    assert again[1].text == first[0].text


def test_streams_share_decode_steps_and_join_to_the_generated_text(engine, alone):
    out: dict[int, str] = {}

    def read(i: int) -> None:
        out[i] = "".join(engine.stream(PROMPTS[i], GREEDY))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [out[i] for i in range(4)] == alone[:4]


def test_a_stream_closed_early_frees_its_slot(engine, alone):
    stream = engine.stream(PROMPTS[0], GREEDY.replace(max_new_tokens=200))
    next(stream)
    stream.close()
    assert engine.generate(PROMPTS[:4], GREEDY)[3].text == alone[3]  # all four slots are usable again


def test_no_beam_search_on_llamacpp(engine):
    with pytest.raises(InputError, match="beam"):
        engine.generate([PROMPTS[0]], GREEDY.replace(num_beams=2))


def test_an_idle_engine_holds_no_thread_and_is_freed_when_dropped(gguf):
    import gc
    import weakref

    engine = engine_of(gguf, batch_size=2)
    engine.generate(PROMPTS[:3], GREEDY)
    scheduler = weakref.ref(engine.scheduler)
    worker = engine.scheduler._worker
    if worker is not None:  # the loop ends by itself once nothing is queued or running
        worker.join(timeout=10)
        assert not worker.is_alive()
    del engine
    gc.collect()
    assert scheduler() is None  # its context was freed with it (before the model)
    assert not [t for t in threading.enumerate() if t.name == "knowlm-llamacpp" and t.is_alive()]


def test_prompts_queued_together_compute_their_shared_prefix_once(gguf):
    text = "Knowledge graphs store facts as triples: subject, relation, object. " * 3
    prompts = [text + "Berlin is", text + "Paris is", text + "Rome is"]
    single = engine_of(gguf, batch_size=1)
    alone = [single.generate([p], GREEDY)[0].text for p in prompts]
    single.close()
    engine = engine_of(gguf, batch_size=4)
    shared = engine.count_tokens(text) - 2  # the text's tokens, less one that may merge with the next word
    assert [c.text for c in engine.generate(prompts, GREEDY)] == alone
    assert engine.scheduler.stats["reused_tokens"] >= 2 * shared  # the 2nd and 3rd waited a step for it
    engine.close()


def test_extraction_answers_close_a_list_when_it_repeats_an_item(engine):
    pytest.importorskip("llguidance")
    check_lists_close_on_repeat(engine)

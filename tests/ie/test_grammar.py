"""Grounded answer grammars: every extracted string is a piece of the input, enforced while decoding."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.llamacpp import is_llamacpp_available
from knowlm.ie.extractor import Extractor
from knowlm.ie.grammar import answer_grammar, text_chunks
from knowlm.ie.results import Event, Triple
from knowlm.ie.tasks import get_task, parse_schema

llguidance = pytest.importorskip("llguidance")


def test_chunks_take_latin_words_whole_and_chinese_by_character():
    assert text_chunks("Tim Cook, 马云在杭州") == ["Tim", " ", "Cook", ",", " ", "马", "云", "在", "杭", "州"]
    # JSON escapes are single chunks, so a quote or backslash in the text is written escaped
    assert text_chunks('say "hi"\\') == ["say", " ", '\\"', "hi", '\\"', "\\\\"]
    assert text_chunks("GPT4o和iPhone15") == ["GPT4o", "和", "iPhone15"]


@pytest.fixture(scope="module")
def ll_tokenizer(tiny_model_dir: Path):
    import llguidance.hf
    from transformers import AutoTokenizer

    return llguidance.hf.from_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))


def accepts(ll_tokenizer, grammar: str, answer: str) -> bool:
    matcher = llguidance.LLMatcher(ll_tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar))
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(ll_tokenizer.tokenize_str(answer)) and matcher.is_accepting()


@pytest.mark.parametrize(
    ("task", "schema", "good", "bad"),
    [
        ("ner", "人物,地点", {"人物": ["马云"], "地点": ["杭州"]}, {"人物": ["马化腾"], "地点": []}),
        (
            "re",
            "founder,based in",
            {"founder": [{"head": "Apple", "tail": "Steve Jobs"}], "based in": []},
            {"founder": [{"head": "Apple", "tail": "Jobs Steve"}], "based in": []},
        ),
        (
            "ee",
            "裁员:裁员方|裁员人数",
            {"裁员": [{"trigger": "裁员", "arguments": {"裁员方": "甲骨文", "裁员人数": "NAN"}}]},
            {"裁员": [{"trigger": "解雇", "arguments": {"裁员方": "甲骨文", "裁员人数": "NAN"}}]},
        ),
        (
            "kg",
            "人物:出生地|职业",
            {"人物": {"马云": {"出生地": "杭州"}}},
            {"人物": {"马云": {"职业": "老师"}}},
        ),
    ],
)
def test_grammar_accepts_grounded_answers_and_refuses_others(ll_tokenizer, task, schema, good, bad):
    text = "马云在杭州创立了阿里巴巴。Steve Jobs founded Apple. 甲骨文裁员900人。"
    shape = get_task(task).answer_json_schema(parse_schema(task, schema))
    grammar = answer_grammar(shape, text)
    assert accepts(ll_tokenizer, grammar, json.dumps(good, ensure_ascii=False))
    assert not accepts(ll_tokenizer, grammar, json.dumps(bad, ensure_ascii=False))
    # without a text only the shape is enforced
    assert accepts(ll_tokenizer, answer_grammar(shape), json.dumps(bad, ensure_ascii=False))


def test_quotes_and_backslashes_in_the_text_stay_valid_json(ll_tokenizer):
    shape = get_task("ner").answer_json_schema(parse_schema("ner", "work"))
    grammar = answer_grammar(shape, 'He wrote "C:\\temp" twice.')
    assert accepts(ll_tokenizer, grammar, json.dumps({"work": ['"C:\\temp"']}))
    assert not accepts(ll_tokenizer, grammar, json.dumps({"work": ["C:/temp"]}))


def _strings(result) -> list[str]:
    out = []
    for item in result.items:
        if isinstance(item, Triple):
            out += [item.head, item.tail]
        elif isinstance(item, Event):
            out += [item.trigger or "", *(a.text for a in item.arguments if a.text != "NAN")]
        else:
            out.append(item.text)
    return [s for s in out if s]


TEXTS = (
    st.lists(
        st.sampled_from([*"abc xyz,.;\"\\'北京杭州马云阿里。：", "Apple", " Paris", "\n"]),
        min_size=1,
        max_size=30,
    )
    .map("".join)
    .filter(lambda t: t.strip())
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, seed=st.integers(0, 2**16), task=st.sampled_from(["ner", "re"]))
def test_sampled_answers_of_a_random_model_never_leave_the_text(tiny_engine, text, seed, task):
    """A random model sampling at temperature 1 writes whatever the grammar allows: still grounded."""
    schema = "person,place" if task == "ner" else "founder,located in"
    params = SamplingParams(max_new_tokens=48, temperature=1.0, seed=seed)
    result = Extractor(tiny_engine, task, schema, params=params).extract(text)
    for s in _strings(result):
        assert s in text, (s, text, result.outputs)


@pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed")
def test_llamacpp_engine_applies_the_grammar(tiny_model_dir: Path, tmp_path: Path):
    from knowlm.engines import create_engine
    from knowlm.weights.gguf_export import export_gguf

    gguf = export_gguf(tiny_model_dir, tmp_path / "tiny-f16.gguf", qtype="f16")
    engine = create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=512))
    text = "Apple was founded by Steve Jobs in California."
    for seed in range(4):
        params = SamplingParams(max_new_tokens=48, temperature=1.0, seed=seed)
        result = Extractor(engine, "ner", "person,place", params=params).extract(text)
        assert result.outputs[0].startswith('{"person": [')
        assert all(s in text for s in _strings(result)), result.outputs

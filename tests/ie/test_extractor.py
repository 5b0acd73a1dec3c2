"""The extraction pipeline with a scripted engine (answers chosen from the prompt), so every step can
be checked exactly; end-to-end runs with real models are in tests/cli/test_extract_cli.py."""

import json
import re

import pytest

from knowlm.config import SamplingParams
from knowlm.engines.base import Completion
from knowlm.errors import InputError
from knowlm.ie.extractor import Extractor


class ScriptedEngine:
    name = "scripted"
    model_name = "scripted"

    def __init__(self, answer):
        self.answer = answer  # (schema names, input text) -> answer text
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            body = json.loads(re.search(r"### Instruction:\n(.*?)\n\n### Response:", prompt, re.S).group(1))
            names = [
                s if isinstance(s, str) else s.get("predicate") or s.get("event_type") for s in body["schema"]
            ]
            out.append(Completion(self.answer(names, body["input"]), 1, 1, "stop"))
        return out

    def stream(self, prompt, params):
        yield self.generate([prompt], params)[0].text

    def render_chat(self, messages):
        return None  # no chat template: the Alpaca template is used

    def count_tokens(self, text):
        return len(text)


def ner_answer(names, text):
    found = {
        "人物": [n for n in ("马云", "马化腾", "张三") if n in text],
        "地点": [p for p in ("杭州", "深圳") if p in text],
    }
    return json.dumps({name: found.get(name, []) for name in names}, ensure_ascii=False)


def test_ner_end_to_end():
    engine = ScriptedEngine(ner_answer)
    result = Extractor(engine, "ner", "人物,地点,组织").extract("马云在杭州创立了阿里巴巴。")
    assert [(e.type, e.text, e.spans, e.grounded) for e in result.entities] == [
        ("人物", "马云", [(0, 2)], True),
        ("地点", "杭州", [(3, 5)], True),
    ]
    assert result.parsed and result.unknown == [] and result.ungrounded == 0
    data = result.to_dict(outputs=True)
    assert data["results"][0] == {"type": "人物", "text": "马云", "spans": [[0, 2]], "grounded": True}
    assert data["parse"]["ok"] and len(data["outputs"]) == 1


def test_schema_batches_go_to_the_engine_together_and_merge():
    engine = ScriptedEngine(lambda names, text: json.dumps({n: [f"{n}-x"] for n in names}))
    texts = ["first text", "second text"]
    extractor = Extractor(engine, "ner", "a,b,c,d,e", schema_batch_size=2, constrained=False)
    results = extractor.extract_many(texts)
    assert len(engine.calls) == 1  # one engine call: 3 schema batches x 2 texts, all in flight together
    assert len(engine.calls[0][0]) == 6
    assert [e.type for e in results[0].entities] == ["a", "b", "c", "d", "e"]
    assert results[0].ungrounded == 5 and results[1].entities[0].grounded is False


def test_auto_settings_ask_as_the_model_prefers_and_explicit_ones_win():
    engine = ScriptedEngine(lambda names, text: json.dumps({n: [] for n in names}))
    engine.ie_options = {"re": {"prompt_format": "oneke-text-first", "ask_each_up_to": 2}}

    def prompts(task: str, schema: str, **options) -> list[dict]:
        extractor = Extractor(engine, task, schema, **options)
        return [json.loads(body) for body in extractor_bodies(extractor)]

    small = prompts("re", "founder,headquartered_in")
    assert [list(p) for p in small] == [["instruction", "input", "schema"]] * 2  # text first, one each
    assert [p["schema"] for p in small] == [["founder"], ["headquartered_in"]]
    large = prompts("re", "a,b,c,d,e")  # more items than ask_each_up_to: the task's batches of 4
    assert [len(p["schema"]) for p in large] == [4, 1]
    explicit = prompts("re", "founder,headquartered_in", prompt_format="oneke", schema_batch_size=2)
    assert [list(p) for p in explicit] == [["instruction", "schema", "input"]]
    ner = prompts("ner", "person,location")  # the model states nothing for NER: OneKE, the task's batches
    assert [list(p) for p in ner] == [["instruction", "schema", "input"]]


def test_a_large_schema_is_asked_one_item_a_prompt_with_the_text_first():
    engine = ScriptedEngine(lambda names, text: json.dumps({n: [] for n in names}))
    engine.ie_options = {"re": {"ask_each_up_to": 2, "text_first_over": 6}}

    def bodies(schema: str, **options) -> list[dict]:
        return [json.loads(b) for b in extractor_bodies(Extractor(engine, "re", schema, **options))]

    middle = bodies("a,b,c,d,e,f")  # 6 relations: OneKE's batches of 4, schema first
    schema_first = ["instruction", "schema", "input"]
    assert [(list(p), len(p["schema"])) for p in middle] == [(schema_first, 4), (schema_first, 2)]
    large = bodies("a,b,c,d,e,f,g")  # 7: one a prompt, the text first
    assert [(list(p), p["schema"]) for p in large] == [
        (["instruction", "input", "schema"], [n]) for n in "abcdefg"
    ]
    assert len(bodies("a,b,c,d,e,f,g", schema_batch_size=4)) == 2  # explicit options still win
    assert list(bodies("a,b,c,d,e,f,g", prompt_format="oneke")[0]) == schema_first


def extractor_bodies(extractor: Extractor) -> list[str]:
    return [
        re.search(r"### Instruction:\n(.*?)\n\n### Response:", prompt, re.S).group(1)
        for _, prompt, _ in extractor.prompts_for("Steve Jobs founded Apple.")
    ]


def test_long_documents_are_chunked_and_merged_with_document_offsets():
    text = "马云在杭州创业。" * 3 + "马化腾在深圳创业。" * 3
    engine = ScriptedEngine(ner_answer)
    result = Extractor(engine, "ner", "人物,地点", max_chunk_tokens=20, constrained=False).extract(text)
    prompts = engine.calls[0][0]
    assert len(prompts) > 2  # the text was split
    assert [e.text for e in result.entities] == [
        "马云",
        "杭州",
        "马化腾",
        "深圳",
    ]  # deduplicated, in text order
    mahuateng = result.entities[2]
    assert mahuateng.spans == [(24, 27), (33, 36), (42, 45)]
    assert all(text[s:e] == "马化腾" for s, e in mahuateng.spans)


def test_drop_ungrounded():
    engine = ScriptedEngine(lambda names, text: '{"人物": ["马云", "李彦宏"], "地点": []}')
    kept = Extractor(engine, "ner", "人物,地点").extract("马云在杭州。")
    assert [e.text for e in kept.entities] == ["马云", "李彦宏"] and kept.ungrounded == 1
    dropped = Extractor(engine, "ner", "人物,地点", drop_ungrounded=True).extract("马云在杭州。")
    assert [e.text for e in dropped.entities] == ["马云"] and dropped.ungrounded == 1


def test_unknown_types_and_unreadable_answers_are_reported():
    engine = ScriptedEngine(lambda names, text: '{"人物": ["马云"], "时间": ["今天"]}')
    result = Extractor(engine, "ner", "人物").extract("马云今天在杭州。")
    assert [e.text for e in result.entities] == ["马云"] and result.unknown == ["时间"]
    garbage = Extractor(ScriptedEngine(lambda n, t: "I cannot help."), "ner", "人物").extract("马云。")
    assert garbage.entities == [] and not garbage.parsed
    assert garbage.problems == ["no JSON object or list in the output"]


def test_constrained_passes_each_batch_json_schema():
    engine = ScriptedEngine(lambda names, text: json.dumps({n: [] for n in names}))
    Extractor(engine, "re", "a,b,c", grounded=False, schema_batch_size=2).extract("text")
    schemas = [params.json_schema for _, params in engine.calls]
    assert [s["required"] for s in schemas] == [["a", "b"], ["c"]]


def test_sampling_params_are_used():
    engine = ScriptedEngine(ner_answer)
    Extractor(engine, "ner", "人物", params=SamplingParams(max_new_tokens=7)).extract("马云")
    assert engine.calls[0][1].max_new_tokens == 7


def test_bad_inputs():
    engine = ScriptedEngine(ner_answer)
    with pytest.raises(InputError, match="non-empty string"):
        Extractor(engine, "ner", "人物").extract("   ")
    with pytest.raises(InputError, match="no schema"):
        Extractor(engine, "ner")
    with pytest.raises(InputError, match="unknown task"):
        Extractor(engine, "sentiment", "x")


def test_decoding_is_constrained_by_default_where_answers_are_json():
    engine = ScriptedEngine(ner_answer)
    shape = {"type": "object"}
    assert Extractor(engine, "ner", "人物")._params(shape, "x").grammar is not None
    assert Extractor(engine, "ner", "人物", constrained=False)._params(shape, "x").grammar is None
    # KnowLM's prompt families answer in text, not JSON: they decode freely
    assert Extractor(engine, "ner", "人物", prompt_format="knowlm-tuple")._params(shape, "x").grammar is None


def test_grounded_constraint_is_a_grammar_per_chunk():
    engine = ScriptedEngine(lambda names, text: json.dumps({n: [] for n in names}))
    Extractor(engine, "ner", "a,b").extract_many(["马云在杭州", "Tim Cook"])
    grammars = [params.grammar for _, params in engine.calls]
    assert len(grammars) == 2 and all(p.json_schema is None for _, p in engine.calls)
    assert '"马", "云"' in grammars[0] and '"Tim", " ", "Cook"' in grammars[1]

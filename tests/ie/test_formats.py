import json

import pytest

from knowlm.errors import InputError
from knowlm.ie.formats import detect_language, format_names, get_format
from knowlm.ie.tasks import get_task, parse_schema

SCHEMAS = {
    "ner": ("人物,地点", ["人物", "地点"]),
    "re": ("创始人,总部", ["创始人", "总部"]),
    "spo": ("人物_毕业院校_学校", [{"subject_type": "人物", "predicate": "毕业院校", "object_type": "学校"}]),
    "ee": ("裁员:裁员方|时间", [{"event_type": "裁员", "trigger": True, "arguments": ["裁员方", "时间"]}]),
    "eet": ("裁员,起火", ["裁员", "起火"]),
    "eea": (
        [{"event_type": "裁员", "trigger": ["裁员"], "arguments": ["时间"]}],
        [{"event_type": "裁员", "trigger": ["裁员"], "arguments": ["时间"]}],
    ),
    "kg": ("人物:别名|父母", [{"entity_type": "人物", "attributes": ["别名", "父母"]}]),
}


@pytest.mark.parametrize("task", list(SCHEMAS))
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_oneke_instruction_for_every_task(task, lang):
    spec, expected_schema = SCHEMAS[task]
    t = get_task(task)
    built = get_format("oneke", task).build(t, parse_schema(task, spec), "马云创立了阿里巴巴。", lang)
    body = json.loads(built.instruction)
    assert body == {
        "instruction": t.instructions[lang],
        "schema": expected_schema,
        "input": "马云创立了阿里巴巴。",
    }
    assert built.input is None
    assert ("JSON" in body["instruction"]) and (("专家" in body["instruction"]) == (lang == "zh"))


@pytest.mark.parametrize(
    ("fmt", "task", "answer", "expected"),
    [
        (
            "knowlm-tuple",
            "re",
            "(马云,创始人,阿里巴巴)\n(马化腾,创始人,腾讯)",
            [("马云", "创始人", "阿里巴巴"), ("马化腾", "创始人", "腾讯")],
        ),
        (
            "knowlm-colon",
            "re",
            "创始人: 马云,阿里巴巴\n总部：阿里巴巴，杭州",
            [("马云", "创始人", "阿里巴巴"), ("阿里巴巴", "总部", "杭州")],
        ),
        (
            "knowlm-json",
            "re",
            '[{"head": "马云", "relation": "创始人", "tail": "阿里巴巴"}]',
            [("马云", "创始人", "阿里巴巴")],
        ),
        ("knowlm-tuple", "ner", "(人物,马云)\n(地点,杭州)", [("人物", "马云"), ("地点", "杭州")]),
        ("knowlm-json", "ner", '[{"entity_type": "人物", "entity": "马云"}]', [("人物", "马云")]),
    ],
)
def test_knowlm_families_build_and_read(fmt, task, answer, expected):
    schema = parse_schema(task, "创始人,总部" if task == "re" else "人物,地点")
    prompt_format = get_format(fmt, task)
    built = prompt_format.build(get_task(task), schema, "马云在杭州创立了阿里巴巴。", "zh")
    assert built.input == "马云在杭州创立了阿里巴巴。"
    assert all(name in built.instruction for name in schema.names)
    read = prompt_format.read(answer)
    items, _ = get_task(task).read_answer(read.value, schema)
    assert [i.key() for i in items] == expected


def test_knowlm_ee_lists_roles():
    schema = parse_schema("ee", "裁员:裁员方|时间")
    built = get_format("knowlm-json", "ee").build(get_task("ee"), schema, "text", "en")
    assert "裁员(裁员方, 时间)" in built.instruction


def test_unsupported_combinations():
    assert format_names() == ["oneke", "oneke-text-first", "knowlm-tuple", "knowlm-colon", "knowlm-json"]
    with pytest.raises(InputError, match="does not support task 'kg'"):
        get_format("knowlm-tuple", "kg")
    with pytest.raises(InputError, match="unknown prompt format"):
        get_format("yaml", "ner")


def test_language_detection():
    assert detect_language("马云在杭州创立了阿里巴巴。") == "zh"
    assert detect_language("Tim Cook leads Apple.") == "en"
    assert detect_language("苹果公司 Apple Inc. 的 CEO 是 Tim Cook") == "zh"
    assert detect_language("12345") == "en"


def test_text_first_puts_the_input_before_the_schema_so_a_texts_prompts_share_it(tiny_engine):
    from knowlm.ie.extractor import Extractor

    t = get_task("re")
    schema = parse_schema("re", "founder,ceo")
    plain = json.loads(get_format("oneke", "re").build(t, schema, "Jobs founded Apple.", "en").instruction)
    first = json.loads(
        get_format("oneke-text-first", "re").build(t, schema, "Jobs founded Apple.", "en").instruction
    )
    assert first == plain and list(first) == ["instruction", "input", "schema"]
    text = "Steve Jobs founded Apple, which is headquartered in Cupertino."
    extractor = Extractor(tiny_engine, "re", "founder,ceo,headquartered in", schema_batch_size=1, template="raw",
                          prompt_format="oneke-text-first")  # fmt: skip
    prompts = [p for _, p, _ in extractor.prompts_for(text)]
    assert len(prompts) == 3 and all(p.startswith(prompts[0].split('"schema"')[0]) for p in prompts)
    assert text in prompts[0].split('"schema"')[0]  # the text is in the shared beginning


def test_schema_descriptions_follow_the_instruction_for_the_items_of_each_prompt():
    schema = parse_schema(
        "re",
        [{"relation": "crosses", "description": "what a bridge crosses over"}, "founder", "sport"],
        source="schema.json",
    )
    assert schema.items[0].description == "what a bridge crosses over" and schema.items[1].description is None
    first, second = (
        json.loads(get_format("oneke", "re").build(get_task("re"), batch, "The bridge spans the Irwell.", "en").instruction)
        for batch in schema.batches(2)
    )  # fmt: skip
    assert first["instruction"].endswith(" What each schema item means: crosses: what a bridge crosses over.")
    assert first["schema"] == ["crosses", "founder"]  # the answer is still keyed by the names
    assert "means" not in second["instruction"]  # "sport" has no description
    zh = parse_schema(
        "re", [{"relation": "创始人", "description": "创立该组织的人。"}]
    )  # one full stop, not two
    built = get_format("knowlm-json", "re").build(get_task("re"), zh, "马云创立了阿里巴巴。", "zh")
    assert built.instruction.endswith("各项的含义：创始人：创立该组织的人。")
    with pytest.raises(InputError, match=r"schema\[0\]\.description: expected a non-empty string"):
        parse_schema("re", [{"relation": "x", "description": 3}])

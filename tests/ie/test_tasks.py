import json

import pytest

from knowlm.errors import InputError
from knowlm.ie.results import Argument, Entity, Event, Triple
from knowlm.ie.tasks import get_task, parse_schema, task_names


def read(task, schema, value):
    return get_task(task).read_answer(value, parse_schema(task, schema))


def test_every_task_is_registered():
    assert task_names() == ["ner", "re", "spo", "ee", "eet", "eea", "kg"]
    with pytest.raises(InputError, match="unknown task 'xyz'"):
        get_task("xyz")
    assert get_task("NER").name == "ner"


def test_ner_answers_and_unknown_types():
    items, reading = read("ner", "人物,地点", {"人物": ["张三", "NAN", ""], "地点": "杭州", "时间": ["昨天"]})
    assert items == [Entity("人物", "张三"), Entity("地点", "杭州")]
    assert reading.unknown == ["时间"] and reading.matched


def test_ner_flat_list_forms():
    items, _ = read("ner", "person", [{"entity": "Ada", "entity_type": "person"}, ["person", "Alan"]])
    assert [e.text for e in items] == ["Ada", "Alan"]


def test_re_answers():
    value = {
        "创始人": [{"head": "马云", "tail": "阿里巴巴"}, {"head": "马云"}, ["马化腾", "腾讯"]],
        "总部": [],
    }
    items, reading = read("re", "创始人,总部", value)
    assert [t.key() for t in items] == [("马云", "创始人", "阿里巴巴"), ("马化腾", "创始人", "腾讯")]
    assert reading.malformed == 1  # the pair without a tail


def test_re_triple_list_form():
    items, _ = read("re", "founder", [["Jobs", "founder", "Apple"], ["X", "ceo", "Y"]])
    assert [t.key() for t in items] == [("Jobs", "founder", "Apple")]


def test_spo_answers_carry_types():
    items, _ = read("spo", "国家_首都_城市", {"首都": [{"subject": "中国", "object": "北京"}]})
    assert items == [Triple("中国", "首都", "北京", "国家", "城市")]


def test_ee_answers_with_nan_lists_and_unknown_roles():
    value = {
        "裁员": [
            {"trigger": "裁员", "arguments": {"裁员方": "NAN", "时间": ["5月份", "昨天"], "地点": "北京"}}
        ]
    }
    items, reading = read("ee", "裁员:裁员方|时间", value)
    assert items == [Event("裁员", "裁员", [Argument("时间", "5月份"), Argument("时间", "昨天")])]
    assert reading.unknown == ["裁员.地点"]


def test_ee_argument_list_form():
    value = {"裁员": [{"trigger": "裁员", "arguments": [{"role": "时间", "argument": "5月份"}]}]}
    items, _ = read("ee", "裁员:时间", value)
    assert items[0].arguments == [Argument("时间", "5月份")]


def test_eet_answers():
    items, _ = read("eet", "裁员,起火", {"裁员": ["裁员"], "起火": []})
    assert items == [Event("裁员", "裁员")]


def test_kg_answers():
    value = {"人物": {"明治天皇": {"别名": "睦仁", "父母": ["孝明天皇", "英照皇太后"], "身高": "1.6m"}}}
    items, reading = read("kg", "人物:别名|父母", value)
    assert [t.key() for t in items] == [
        ("明治天皇", "别名", "睦仁"),
        ("明治天皇", "父母", "孝明天皇"),
        ("明治天皇", "父母", "英照皇太后"),
    ]
    assert items[0].head_type == "人物" and reading.unknown == ["人物.身高"]


@pytest.mark.parametrize(
    ("task", "schema", "items"),
    [
        ("ner", "人物,地点", [Entity("人物", "张三"), Entity("人物", "李四")]),
        ("re", "founder,capital", [Triple("Jobs", "founder", "Apple")]),
        ("spo", "国家_首都_城市", [Triple("中国", "首都", "北京", "国家", "城市")]),
        ("ee", "裁员:裁员方|时间", [Event("裁员", "裁员", [Argument("时间", "5月份")])]),
        ("eet", "裁员", [Event("裁员", "裁员")]),
        (
            "kg",
            "人物:别名|父母",
            [
                Triple("明治天皇", "父母", "孝明天皇", head_type="人物"),
                Triple("明治天皇", "父母", "英照皇太后", head_type="人物"),
            ],
        ),
    ],
)
def test_answers_round_trip(task, schema, items):
    t, s = get_task(task), parse_schema(task, schema)
    answer = t.to_answer(items, s)
    assert set(answer) == set(s.names)  # absent items are answered with empty values (negatives)
    again, reading = t.read_answer(json.loads(json.dumps(answer)), s)
    assert [i.key() for i in again] == [i.key() for i in items] and reading.matched


def test_answer_json_schema_shapes():
    ner = get_task("ner").answer_json_schema(parse_schema("ner", "a,b"))
    assert ner["required"] == ["a", "b"] and ner["additionalProperties"] is False
    ee = get_task("ee").answer_json_schema(parse_schema("ee", "裁员:时间"))
    args = ee["properties"]["裁员"]["items"]["properties"]["arguments"]
    assert args["required"] == ["时间"]


def test_keys_match_schema_items_after_nfkc_case_and_space_folding():
    schema = parse_schema("ner", "person,organization,地点")
    items, reading = get_task("ner").read_answer(
        {"Person": ["Tim Cook"], " ORGANIZATION ": ["Apple"], "地点": ["杭州"], "persons": ["x"]}, schema
    )
    assert sorted((e.type, e.text) for e in items) == [
        ("organization", "Apple"),
        ("person", "Tim Cook"),
        ("地点", "杭州"),
    ]
    assert reading.unknown == ["persons"]  # nothing fuzzier than folding
    assert "read key 'Person' as 'person'" in reading.problems
    # full-width letters and ideographic spaces (NFKC) fold too
    schema = parse_schema("re", "founded by")
    items, reading = get_task("re").read_answer(
        {"Ｆｏｕｎｄｅｄ\u3000by": [{"head": "A", "tail": "B"}]}, schema
    )
    assert [t.key() for t in items] == [("A", "founded by", "B")] and reading.problems

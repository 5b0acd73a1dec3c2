import json

import pytest

from knowlm.errors import InputError
from knowlm.ie.tasks import load_schema_file, parse_schema


def test_compact_strings_per_task():
    assert parse_schema("ner", "person, organization，地点").names == ["person", "organization", "地点"]
    re_schema = parse_schema("re", "founder(organization>person),capital")
    assert re_schema.items[0].head_type == "organization" and re_schema.items[0].tail_type == "person"
    spo = parse_schema("spo", "人物_毕业院校_学校").items[0]
    assert (spo.head_type, spo.name, spo.tail_type) == ("人物", "毕业院校", "学校")
    ee = parse_schema("ee", "裁员:裁员方|裁员人数|时间,起火:地点").items
    assert ee[0].name == "裁员" and ee[0].roles == ("裁员方", "裁员人数", "时间") and ee[1].roles == ("地点",)
    kg = parse_schema("kg", "人物：出生日期|国籍").items[0]
    assert kg.name == "人物" and kg.roles == ("出生日期", "国籍")


def test_oneke_schema_objects():
    ee = parse_schema("ee", [{"event_type": "裁员", "trigger": True, "arguments": ["时间"]}]).items[0]
    assert ee.roles == ("时间",) and ee.triggers == ()
    eea = parse_schema("eea", [{"event_type": "裁员", "trigger": ["裁员"], "arguments": ["时间"]}]).items[0]
    assert eea.triggers == ("裁员",)
    spo = parse_schema("spo", [{"subject_type": "国家", "predicate": "首都", "object_type": "城市"}]).items[0]
    assert (spo.head_type, spo.name, spo.tail_type) == ("国家", "首都", "城市")
    assert parse_schema("ner", '["人物", "地点"]').names == ["人物", "地点"]


@pytest.mark.parametrize(
    ("task", "spec", "message"),
    [
        ("ner", "", "the schema is empty"),
        ("ner", [], "the schema is empty"),
        ("ner", "person,person", "duplicate schema items: person"),
        ("ner", [1], r"schema\[0\]: expected a string or an object"),
        ("ner", [{"colour": "red"}], r"schema\[0\]: an item needs one of the fields"),
        ("ner", ["  "], r"schema\[0\]: expected a non-empty string"),
        ("spo", "人物_学校", "an spo item is 'subject type_predicate_object type'"),
        ("kg", "人物", "kg items need attributes"),
        ("eea", [{"event_type": "裁员"}], "eea items need argument roles"),
        ("ner", "[not json", "invalid JSON"),
        ("ner", {"a": 1}, "expected a list of schema items"),
    ],
)
def test_bad_schemas_are_clear_errors(task, spec, message):
    with pytest.raises(InputError, match=message):
        parse_schema(task, spec)


def test_schema_batches():
    schema = parse_schema("re", "a,b,c,d,e")
    assert [b.names for b in schema.batches(2)] == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(InputError):
        schema.batches(0)


def test_schema_files(tmp_path):
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"schema": ["人物", "地点"]}, ensure_ascii=False))
    assert load_schema_file("ner", js).names == ["人物", "地点"]
    txt = tmp_path / "s.txt"
    txt.write_text("# relations\nfounder\n\ncapital\n")
    assert load_schema_file("re", txt).names == ["founder", "capital"]
    bad = tmp_path / "bad.json"
    bad.write_text('["a",\n  oops]')
    with pytest.raises(InputError, match=r"bad.json line 2: invalid JSON"):
        load_schema_file("ner", bad)
    with pytest.raises(InputError, match="no such file"):
        load_schema_file("ner", tmp_path / "missing.json")

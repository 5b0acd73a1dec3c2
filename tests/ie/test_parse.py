"""The forgiving JSON reader on a corpus of realistic messy model outputs (Chinese and English)."""

import pytest

from knowlm.ie.parse import read_json

# (model output, expected value, complete?)
CASES = [
    # clean and nearly clean JSON
    ('{"人物": ["张三"], "地点": []}', {"人物": ["张三"], "地点": []}, True),
    (
        '{"person": ["Tim Cook"], "organization": ["Apple"]}',
        {"person": ["Tim Cook"], "organization": ["Apple"]},
        True,
    ),
    ('  \n{"a": []}\n\n', {"a": []}, True),
    ('[{"head": "A", "relation": "r", "tail": "B"}]', [{"head": "A", "relation": "r", "tail": "B"}], True),
    # chatter before and after
    ('好的，答案如下：{"人物": ["李白"]} 希望对你有帮助！', {"人物": ["李白"]}, True),
    (
        'Sure! Here is the JSON:\n{"person": ["Ada"]}\nLet me know if you need more.',
        {"person": ["Ada"]},
        True,
    ),
    ('{"a": ["x"]} {"a": ["y"]}', {"a": ["x", "y"]}, True),  # consecutive objects are merged
    ('{"a": ["x"]} {"a": ["x"]}', {"a": ["x"]}, True),  # a repeated answer adds nothing
    ('### Response:\n{"地点": ["杭州"]}\n### Instruction:', {"地点": ["杭州"]}, True),
    # code fences
    ('```json\n{"人物": ["王五"]}\n```', {"人物": ["王五"]}, True),
    ('```\n{"person": []}\n```\nDone.', {"person": []}, True),
    # quotes
    (
        "{'person': ['Marie Curie'], 'location': ['Paris']}",
        {"person": ["Marie Curie"], "location": ["Paris"]},
        True,
    ),
    ("{“人物”: [“鲁迅”], “作品”: [“狂人日记”]}", {"人物": ["鲁迅"], "作品": ["狂人日记"]}, True),
    ("{‘地点’: [‘北京’]}", {"地点": ["北京"]}, True),
    ('{"title": "He said \\"hi\\""}', {"title": 'He said "hi"'}, True),
    # Chinese punctuation as JSON syntax
    ('{"人物"：["张三"，"李四"]，"地点"：[]}', {"人物": ["张三", "李四"], "地点": []}, True),
    ('{"人物": ["张三"、"李四"]}', {"人物": ["张三", "李四"]}, True),
    # unquoted words and Python literals
    ("{人物: [张三, 李四], 地点: []}", {"人物": ["张三", "李四"], "地点": []}, True),
    ('{"founder": None, "ok": True}', {"founder": None, "ok": True}, True),
    ('{"裁员人数": NAN, "时间": "5月份"}', {"裁员人数": "NAN", "时间": "5月份"}, True),
    ('{"count": 3, "ratio": 0.5}', {"count": 3, "ratio": 0.5}, True),
    # tuples and brackets
    (
        '[("马云", "创始人", "阿里巴巴"), ("阿里巴巴", "总部", "杭州")]',
        [["马云", "创始人", "阿里巴巴"], ["阿里巴巴", "总部", "杭州"]],
        True,
    ),
    ("[（鲁迅，作者，狂人日记）]", [["鲁迅", "作者", "狂人日记"]], True),
    # trailing and missing commas
    ('{"a": ["x", "y",], "b": [],}', {"a": ["x", "y"], "b": []}, True),
    ('{"a": ["x" "y"]}', {"a": ["x", "y"]}, True),
    ('{"a": ["x"] "b": ["y"]}', {"a": ["x"], "b": ["y"]}, True),
    # cut off by the token limit: every complete item is kept
    ('{"人物": ["张三", "李四"], "地点": ["杭', {"人物": ["张三", "李四"]}, False),  # no guess for 地点
    ('{"person": ["Ada", "Alan", "Gra', {"person": ["Ada", "Alan"]}, False),
    ('[{"head": "A", "tail": "B"}, {"head": "C", "ta', [{"head": "A", "tail": "B"}, {"head": "C"}], False),
    (
        '{"组织关系-裁员": [{"trigger": "裁员", "arguments": {"时间": "5月份", "裁员人数": "900',
        {"组织关系-裁员": [{"trigger": "裁员", "arguments": {"时间": "5月份"}}]},
        False,
    ),
    ('{"a": ["x"], "b": {"c": ["y"], "d"', {"a": ["x"], "b": {"c": ["y"]}}, False),
    ('{"person": [', None, False),  # nothing complete to keep
    # nested event answers with a list value and escaped unicode
    (
        '{"e": [{"trigger": "\\u88c1\\u5458", "arguments": {"r": ["a", "b"]}}]}',
        {"e": [{"trigger": "裁员", "arguments": {"r": ["a", "b"]}}]},
        True,
    ),
    # KG answers
    (
        '{"人物": {"明治天皇": {"别名": "睦仁", "父母": ["孝明天皇", "英照皇太后"]}}}',
        {"人物": {"明治天皇": {"别名": "睦仁", "父母": ["孝明天皇", "英照皇太后"]}}},
        True,
    ),
]


@pytest.mark.parametrize(("text", "expected", "complete"), CASES)
def test_messy_outputs(text, expected, complete):
    result = read_json(text)
    assert result.found
    assert result.value == expected
    assert result.complete is complete
    if not complete:
        assert any("cut off" in p for p in result.problems)


@pytest.mark.parametrize("text", ["", "I could not find any entities.", "没有找到相关实体。", "(none)"])
def test_no_json_is_reported_not_raised(text):
    result = read_json(text)
    assert not result.found and result.value is None
    assert result.problems == ["no JSON object or list in the output"]


def test_repairs_are_reported():
    assert "read non-JSON quotes" in read_json("{'a': ['b']}").problems
    assert "read unquoted text" in read_json("{a: [b]}").problems
    assert read_json('{"a": ["b"]}').problems == []


def test_never_raises_on_garbage():
    for text in ["{{{{", "[[[", '{"a": }', "{:::}", "]]]{", '{"a": [}', "{" * 5000, "《》【】“”"]:
        read_json(text)  # must not raise


def test_corpus_size():
    assert len(CASES) >= 30


def test_consecutive_objects_are_merged_and_reported():
    read = read_json(
        '{"person": ["Tim Cook"]} {"organization": ["Apple"]}\n{"person": ["Jobs"], "place": []}'
    )
    assert read.complete
    assert read.value == {"person": ["Tim Cook", "Jobs"], "organization": ["Apple"], "place": []}
    assert "merged 3 consecutive JSON objects" in read.problems
    # an object followed by chatter, or by a list, is not merged with it
    assert read_json('{"a": [1]} and {b}').value == {"a": [1]}
    assert read_json('{"a": [1]} ["x"]').value == {"a": [1]}
    # lenient objects merge too; a cut-off second object keeps its complete items
    read = read_json("{'人物': ['马云']}，{'地点': ['杭州'], '组织': ['阿")
    assert read.value == {"人物": ["马云"], "地点": ["杭州"]} and not read.complete

from knowlm.ie.ground import find_spans, ground
from knowlm.ie.results import Argument, Entity, Event, Triple


def test_exact_spans_of_repeated_mentions():
    text = "Apple sued Samsung; Samsung then sued Apple."
    assert find_spans(text, "Apple") == [(0, 5), (38, 43)]
    assert find_spans(text, "Samsung") == [(11, 18), (20, 27)]


def test_normalized_match_maps_back_to_original_offsets():
    text = "ＡＰＰＬＥ  Inc. 发布了新产品"
    spans = find_spans(text, "apple inc.")
    assert spans == [(0, 11)] and text[0:11] == "ＡＰＰＬＥ  Inc."
    assert find_spans("北京，中国", "北京,中国") == [(0, 5)]  # full-width comma


def test_not_found_and_empty():
    assert find_spans("abc", "xyz") == []
    assert find_spans("abc", "  ") == []


def test_ground_marks_items():
    text = "马云在杭州创立了阿里巴巴。"
    items = ground(
        text,
        [
            Entity("人物", "马云"),
            Entity("人物", "马化腾"),
            Triple("马云", "创始人", "阿里巴巴"),
            Event("创立", "创立", [Argument("地点", "杭州"), Argument("时间", "1999年")]),
        ],
    )
    assert items[0].spans == [(0, 2)] and items[0].grounded
    assert items[1].spans == [] and items[1].grounded is False
    assert items[2].head_spans == [(0, 2)] and items[2].tail_spans == [(8, 12)] and items[2].grounded
    assert items[3].trigger_spans == [(5, 7)] and items[3].arguments[0].spans == [(3, 5)]
    assert items[3].grounded is False  # one argument does not occur

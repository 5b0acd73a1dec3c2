from knowlm.ie.extractor import ExtractionResult
from knowlm.ie.ground import ground
from knowlm.ie.results import Argument, Entity, Event, Triple
from knowlm.web.app import build_ui, graph_svg, highlighted, rows


def result(text, items):
    return ExtractionResult(text, "x", items=ground(text, items))


def test_highlighted_segments_cover_the_text():
    r = result(
        "马云在杭州创立了阿里巴巴。",
        [Entity("人物", "马云"), Entity("地点", "杭州"), Entity("组织", "阿里巴巴")],
    )
    segments = highlighted(r)
    assert "".join(text for text, _ in segments) == r.text
    assert [s for s in segments if s[1]] == [("马云", "人物"), ("杭州", "地点"), ("阿里巴巴", "组织")]


def test_overlapping_spans_keep_the_longest():
    r = result("阿里巴巴集团", [Entity("组织", "阿里巴巴集团"), Entity("组织", "阿里巴巴")])
    assert highlighted(r) == [("阿里巴巴集团", "组织")]


def test_rows_and_graph():
    r = result(
        "马云创立了阿里巴巴。",
        [Triple("马云", "创始人", "阿里巴巴"), Event("创立", "创立", [Argument("创始人", "马云")])],
    )
    assert rows(r) == [
        ["triple", "创始人", "阿里巴巴", "马云", "", True],
        ["event", "创立", "创立", "", "创始人=马云", True],
    ]
    svg = graph_svg(r)
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "创始人" in svg
    assert "No triples" in graph_svg(result("x", [Entity("a", "x")]))


def test_ui_builds_over_an_engine(tiny_engine):
    ui = build_ui(tiny_engine)
    assert ui.title == "KnowLM"

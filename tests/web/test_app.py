import re

import gradio as gr
import pytest

from knowlm.ie.extractor import ExtractionResult
from knowlm.ie.ground import ground
from knowlm.ie.results import Argument, Entity, Event, Triple
from knowlm.web.app import Handlers, build_ui, graph_svg, highlighted, mention_segments, rows


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
        [
            Triple("马云", "创始人", "阿里巴巴", confidence=0.876),
            Event("创立", "创立", [Argument("创始人", "马云")]),
        ],
    )
    assert rows(r) == [
        ["triple", "创始人", "阿里巴巴", "马云", "", 0.88, True],
        ["event", "创立", "创立", "", "创始人=马云", "", True],
    ]
    svg = graph_svg([(t.head, t.relation, t.tail) for t in r.triples])
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "创始人" in svg
    assert "No triples" in graph_svg([])
    # two relations of one pair: one arrow, two labels one above the other; a long name is written whole
    long = "Bernard William Vann of the Sherwood Foresters"
    two = graph_svg([(long, "award received", "Victoria Cross"), (long, "conflict", "Victoria Cross")])
    assert two.count("<line") == 1 and long in two
    ys = [int(v) for v in re.findall(r'rotate\(-?[\d.]+\)" y="(-?\d+)"', two)]
    assert len(ys) == 2 and ys[1] - ys[0] == 14
    width = int(re.search(r'width="(\d+)"', two).group(1))
    assert width >= 300 + 2 * 7 * len(long)  # the drawing and room for the name on either side
    # a neighbourhood: the entity in the middle, each relation's label along its own arrow
    star = graph_svg(
        [("EU", r, n) for r, n in [("member", "Sweden"), ("body", "Parliament"), ("seat", "Brussels")]]
    )
    assert re.search(r'<circle cx="(\d+)" cy="\1" r="5"', star)  # the hub at the centre
    angles = re.findall(r"rotate\((-?[\d.]+)\)", star)
    assert len(set(angles)) == 3  # three arrows, three directions
    both = graph_svg([("A", "likes", "B"), ("B", "likes back", "A")])  # the two directions on two sides
    assert sorted(int(v) for v in re.findall(r'" y="(-?\d+)" text-anchor="middle"', both)) == [-5, 13]


def test_ui_builds_over_an_engine(tiny_engine, monkeypatch):
    ui = build_ui(tiny_engine)
    assert ui.title == "KnowLM"

    def markdown(ui) -> list[str]:
        return [b.value or "" for b in ui.blocks.values() if type(b).__name__ == "Markdown"]

    assert not any("made for extraction" in m for m in markdown(ui))
    monkeypatch.setattr(tiny_engine, "model_name", "default")
    texts = markdown(build_ui(tiny_engine))
    assert any("Model: `default`" in m for m in texts)  # the name the user gave, not a cache path
    assert any("made for extraction" in m for m in texts)


def test_the_knowledge_graph_tab_shows_an_entitys_relations(tiny_engine, tmp_path):
    import json

    pytest.importorskip("pyoxigraph")
    from knowlm.kg.store import GraphStore

    text = "马云在杭州创立了阿里巴巴。"
    item = {"head": "阿里巴巴", "relation": "创始人", "tail": "马云", "grounded": True}
    other = {"head": "阿里巴巴集团", "relation": "总部", "tail": "杭州", "grounded": True}
    records = [
        {"id": 1, "text": text, "task": "re", "results": [item]},
        {"id": 2, "text": "阿里巴巴集团总部位于杭州。", "task": "re", "results": [other]},
    ]
    (tmp_path / "out.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    GraphStore(tmp_path / "kg").load([tmp_path / "out.jsonl"], resolve=True)
    build_ui(tiny_engine, kg_store=tmp_path / "kg")  # the tab builds
    show = Handlers(tiny_engine, tmp_path / "kg").neighbourhood
    table, svg, status, merges, mentions = show("马云", 50)
    assert table == [["阿里巴巴集团", "创始人", "马云", 1]] and "<svg" in svg and status == "1 relations"
    assert "阿里巴巴 → 阿里巴巴集团: legal suffix" not in merges  # 马云's entity had no merge
    assert ("马云", "tail of 创始人") in mentions and "".join(t for t, _ in mentions).startswith(text)
    table, _, status, merges, mentions = show("阿里巴巴", 50)
    assert status == "2 relations" and "阿里巴巴 → 阿里巴巴集团: legal suffix (0.95)" in merges
    assert f"knowlm kg split --store {tmp_path / 'kg'} " in merges
    marked = [(t, label) for t, label in mentions if label]
    assert ("阿里巴巴", "head of 创始人") in marked and (
        "阿里巴巴集团",
        "head of 总部",
    ) in marked  # both names
    assert show("nobody", 50)[0] == [] and show("nobody", 50)[4] == []
    with pytest.raises(gr.Error, match="--kg-edit"):  # read-only: the command is shown instead
        Handlers(tiny_engine, tmp_path / "kg").undo("x", "阿里巴巴", 50)


def test_the_knowledge_graph_tab_undoes_a_merge_when_allowed(tiny_engine, tmp_path):
    import json

    pytest.importorskip("pyoxigraph")
    from knowlm.kg.store import GraphStore

    records = [
        {"id": 1, "text": "马云创立了阿里巴巴。", "task": "re",
         "results": [{"head": "阿里巴巴", "relation": "创始人", "tail": "马云"}]},
        {"id": 2, "text": "阿里巴巴集团总部位于杭州。", "task": "re",
         "results": [{"head": "阿里巴巴集团", "relation": "总部", "tail": "杭州"}]},
    ]  # fmt: skip
    (tmp_path / "out.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    GraphStore(tmp_path / "kg").load([tmp_path / "out.jsonl"], resolve=True)
    handlers = Handlers(tiny_engine, tmp_path / "kg", kg_edit=True)
    _, _, status, merges, _ = handlers.neighbourhood("阿里巴巴", 50)
    assert status == "2 relations" and "knowlm kg split" not in merges
    merge_id = merges.split("id `")[1].split("`")[0]
    with pytest.raises(gr.Error, match="no merge of this graph with id nope"):
        handlers.undo("nope", "阿里巴巴", 50)
    _, _, status, merges, _ = handlers.undo(merge_id, "阿里巴巴", 50)
    assert status == "1 relations" and "undone" in merges and "--restore" in merges


def test_mentions_show_the_sentence_that_holds_them():
    text = "First sentence here. Apple was founded by Jobs in 1976. Another one follows! Jobs left."
    start, jobs, later = text.index("Apple"), text.index("Jobs"), text.rindex("Jobs")
    evidence = [
        {"text": text, "source": "a.jsonl", "document": "7", "item": {"relation": "founder"},
         "spans": [(start, start + 5, "head_spans"), (jobs, jobs + 4, "tail_spans")]},
        {"text": text, "source": "a.jsonl", "document": "7", "item": {"relation": "founder"},
         "spans": [(start, start + 5, "head_spans"), (later, later + 4, "tail_spans")]},  # two sentences
        {"text": None, "source": "b.jsonl", "document": "1", "item": {}, "spans": []},  # no text kept
    ]  # fmt: skip
    written = "".join(t for t, _ in mention_segments(evidence))
    assert written == (
        "Apple was founded by Jobs in 1976.  [a.jsonl #7]\n"
        "Apple was founded by Jobs in 1976. … Jobs left.  [a.jsonl #7]\n"
    )
    assert [(t, label) for t, label in mention_segments(evidence[:1]) if label] == [
        ("Apple", "head of founder"),
        ("Jobs", "tail of founder"),
    ]


@pytest.mark.parametrize(("per_prompt", "prompts"), [(0, 1), (1, 2)])
def test_the_extract_tab_asks_as_many_schema_items_per_prompt_as_told(
    tiny_engine, monkeypatch, per_prompt, prompts
):
    sent: list[str] = []
    generate = tiny_engine.generate
    monkeypatch.setattr(tiny_engine, "generate", lambda ps, params: sent.extend(ps) or generate(ps, params))
    from knowlm.web.app import EXTRACT_FIELDS, SAMPLING_FIELDS

    extract = Handlers(tiny_engine).extract
    options = {f.name: f.default for f in EXTRACT_FIELDS} | {"schema_batch_size": per_prompt or None}
    sampling = {f.name: f.default for f in SAMPLING_FIELDS} | {"max_new_tokens": 8}
    *_, status = extract(
        "re", "founder,headquartered_in", "Jobs founded Apple.", *options.values(), *sampling.values()
    )
    assert len(sent) == prompts and "items" in status
    with pytest.raises(gr.Error, match="max_chunk_tokens must be >= 16"):  # validated as the CLI's are
        extract(
            "re",
            "founder",
            "Jobs founded Apple.",
            *(options | {"max_chunk_tokens": 4}).values(),
            *sampling.values(),
        )

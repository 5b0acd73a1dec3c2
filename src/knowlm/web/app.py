"""The Gradio web UI: extraction, instruction (Alpaca, as KnowLM's LoRA page), generation and knowledge-graph
tabs.

Its buttons call `Handlers` methods, which call the same library functions as the CLI and the API (the engine
protocol, `Extractor`, `GraphStore`); `build_ui` only lays the controls out.
"""

from __future__ import annotations

import dataclasses
import html
import math
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowlm.config import ExtractConfig, SamplingParams
from knowlm.engines.base import Engine
from knowlm.errors import KnowLMError
from knowlm.ie.extractor import ExtractionResult, Extractor
from knowlm.ie.results import Entity, Event, Triple
from knowlm.ie.split import split_sentences
from knowlm.ie.tasks import task_names
from knowlm.prompts import AlpacaTemplate

# task, schema, text; those of `make demo`
EXAMPLES = [
    ["ner", "人物,地点,公司", "马云在杭州创立了阿里巴巴集团。"],
    ["ner", "person,organization,location", "Tim Cook leads Apple from Cupertino, California."],
    ["re", "创始人,总部位于", "马云在杭州创立了阿里巴巴集团。"],
    ["re", "founder,headquartered_in", "Steve Jobs founded Apple, which is headquartered in Cupertino."],
    ["ee", "裁员:裁员方|裁员人数|时间", "5月份甲骨文在华裁员900余人。"],
    [
        "kg",
        "person:birth_date|nationality|occupation",
        "Marie Curie, born in 1867 in Warsaw, was a Polish physicist.",
    ],
]


def web_fields(settings: type, exclude: tuple[str, ...] = ()) -> list[dataclasses.Field[Any]]:
    """The fields of a settings dataclass that the web UI offers: all but ``exclude``, those marked
    ``web=False`` and those the API may not set (files the server would read)."""
    return [
        f
        for f in dataclasses.fields(settings)
        if f.name not in exclude and f.metadata.get("web") is not False and f.metadata.get("api") is not False
    ]


def control(f: dataclasses.Field[Any], kind: Any) -> Any:
    """The Gradio control of a settings field: its default, bounds, choices and help."""
    import gradio as gr

    label, info = f.name.replace("_", " "), f.metadata.get("help")
    default: Any = f.default
    if kind is bool:
        return gr.Checkbox(value=default, label=label, info=info)
    if "choices" in f.metadata:
        return gr.Dropdown(list(f.metadata["choices"]), value=default, label=label, info=info)
    numeric = typing.get_args(kind) or (kind,)
    if int in numeric or float in numeric:
        step = 1 if int in numeric else 0.05
        low = f.metadata.get("ge", f.metadata.get("gt", 0) + step if "gt" in f.metadata else None)
        high = f.metadata.get("le", f.metadata.get("web_max"))
        if low is not None and high is not None:
            return gr.Slider(low, high, value=default, step=step, label=label, info=info)
        return gr.Number(
            value=default, minimum=low, precision=0 if step == 1 else None, label=label, info=info
        )
    return gr.Textbox(value=default, label=label, info=info)


def settings_from(
    settings: type, fields: list[dataclasses.Field[Any]], values: tuple[Any, ...], **fixed: Any
) -> Any:
    """An instance of ``settings`` from the values of its web controls (numbers cast back to their
    field's type, an empty optional number to None), validated."""
    hints = typing.get_type_hints(settings)
    given: dict[str, Any] = dict(fixed)
    for f, value in zip(fields, values, strict=True):
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        if value in (None, "") and type(None) in kinds:
            given[f.name] = None
        elif int in kinds and not isinstance(value, bool):
            given[f.name] = int(value)
        elif float in kinds:
            given[f.name] = float(value)
        else:
            given[f.name] = value
    return settings(**given).validate()


SAMPLING_FIELDS = web_fields(SamplingParams)
EXTRACT_FIELDS = web_fields(ExtractConfig, exclude=("task", "schema"))


def _params(*values: Any) -> SamplingParams:
    params: SamplingParams = settings_from(SamplingParams, SAMPLING_FIELDS, values)
    return params


def highlighted(result: ExtractionResult) -> list[tuple[str, str | None]]:
    """The text cut into segments, each extracted span labelled (of overlapping spans, the one that
    starts first wins, the longest at the same start)."""
    spans: list[tuple[int, int, str]] = []
    for item in result.items:
        if isinstance(item, Entity):
            spans += [(s, e, item.type) for s, e in item.spans]
        elif isinstance(item, Triple):
            spans += [(s, e, f"{item.relation} (head)") for s, e in item.head_spans]
            spans += [(s, e, f"{item.relation} (tail)") for s, e in item.tail_spans]
        elif isinstance(item, Event):
            spans += [(s, e, f"{item.type} trigger") for s, e in item.trigger_spans]
            spans += [(s, e, f"{item.type}.{a.role}") for a in item.arguments for s, e in a.spans]
    segments: list[tuple[str, str | None]] = []
    cursor = 0
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < cursor:
            continue
        if start > cursor:
            segments.append((result.text[cursor:start], None))
        segments.append((result.text[start:end], label))
        cursor = end
    if cursor < len(result.text):
        segments.append((result.text[cursor:], None))
    return segments


def rows(result: ExtractionResult) -> list[list[Any]]:
    """One table row per item: kind, type/relation, text, head, details, confidence, grounded."""
    table = []
    for item in result.items:
        sure = "" if item.confidence is None else round(item.confidence, 2)
        if isinstance(item, Entity):
            table.append(["entity", item.type, item.text, "", "", sure, item.grounded])
        elif isinstance(item, Triple):
            head_type = item.head_type or ""
            table.append(["triple", item.relation, item.tail, item.head, head_type, sure, item.grounded])
        else:
            args = "; ".join(f"{a.role}={a.text}" for a in item.arguments)
            table.append(["event", item.type, item.trigger or "", "", args, sure, item.grounded])
    return table


CHAR_PX = 7  # about how wide a character of the drawing's 12 px font is
LINE_PX = 14


def graph_svg(triples: list[tuple[str, str, str]], size: int = 420) -> str:
    """(head, relation, tail) triples as a small SVG graph: the most connected entity in the middle, the
    others on a circle around it (all on the circle when no entity has more than one relation), labelled
    arrows. Labels run along their arrow, so those of different arrows do not cross; the relations of one
    pair share an arrow and stack their labels (one direction above it, the other below); the circle grows
    to hold the longest label, and names are written whole in a drawing widened to hold them."""
    if not triples:
        return "<p>No triples to draw.</p>"
    names = list(dict.fromkeys(n for head, _, tail in triples for n in (head, tail)))
    edges: dict[tuple[str, str], list[str]] = {}
    for head, relation, tail in triples:
        edges.setdefault((head, tail), [])
        if relation not in edges[(head, tail)]:
            edges[(head, tail)].append(relation)
    degree = {n: sum(n in pair for pair in edges) for n in names}
    hub = max(names, key=lambda n: degree[n]) if len(names) > 2 and max(degree.values()) > 1 else None
    ring = [n for n in names if n != hub]
    longest_label = max(len(r) for relations in edges.values() for r in relations)
    radius = max(size * 0.36, CHAR_PX * longest_label + 40)
    margin = CHAR_PX * max(len(n) for n in names) + 12  # room for the longest name
    width = height = 2 * radius + 60
    center = width / 2
    pos = {
        n: (
            center + radius * math.cos(2 * math.pi * i / len(ring) - math.pi / 2),
            center + radius * math.sin(2 * math.pi * i / len(ring) - math.pi / 2),
        )
        for i, n in enumerate(ring)
    }
    if hub is not None:
        pos[hub] = (center, center)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 2 * margin:.0f}" height="{height:.0f}" '
        f'viewBox="{-margin:.0f} 0 {width + 2 * margin:.0f} {height:.0f}" font-size="12">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="13" refY="3" orient="auto">'
        '<path d="M0,0 L0,6 L8,3 z" fill="#888"/></marker></defs>',
    ]
    order = {n: i for i, n in enumerate(names)}
    for (head, tail), relations in edges.items():
        (x1, y1), (x2, y2) = pos[head], pos[tail]
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#888" '
            'marker-end="url(#arrow)"/>'
        )
        # one angle per pair (from its first-named entity), kept upright; the pair's two directions
        # stack their labels on the two sides of the line
        a, b = sorted((head, tail), key=order.__getitem__)
        (ax, ay), (bx, by) = pos[a], pos[b]
        angle = math.degrees(math.atan2(by - ay, bx - ax))
        flipped = not -90 <= angle <= 90
        angle = angle + 180 if flipped else angle
        above = (head == a) != flipped
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        for k, relation in enumerate(relations):
            dy = -5 - LINE_PX * (len(relations) - 1 - k) if above else 13 + LINE_PX * k
            parts.append(
                f'<text transform="translate({mx:.0f},{my:.0f}) rotate({angle:.1f})" y="{dy}" '
                'text-anchor="middle" fill="#b45309" paint-order="stroke" stroke="white" stroke-width="3">'
                f"{html.escape(relation)}</text>"
            )
    for name, (x, y) in pos.items():
        anchor, dx = ("start", 9) if x >= center else ("end", -9)
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="5" fill="#2563eb"/>'
            f'<text x="{x + dx:.0f}" y="{y + 4:.0f}" text-anchor="{anchor}" font-weight="'
            f'{"bold" if name == hub else "normal"}" paint-order="stroke" stroke="white" stroke-width="3">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def merges_markdown(
    entities: list[dict[str, Any]], store: str | Path | None, *, editable: bool = False
) -> str:
    """What ``GraphStore.explain`` says of each entity, for a reader: its names and each merge with its rule,
    evidence and how to undo it: its id for the UI's undo button (``editable``), else the command."""
    lines = []
    for e in entities:
        lines.append(f"**{html.escape(e['label'] or '')}** {html.escape(e['type'])}: {e['support']} mentions; "
                     f"names: {html.escape(' | '.join(e['names']))}")  # fmt: skip
        for m in e["merges"]:
            where = f" in {html.escape(m['document'])}" if m["document"] else ""
            if m["status"] == "rejected":
                state = f"undone (`knowlm kg split --restore --store {store} {m['id']}` takes it back)"
            elif editable:
                state = f"id `{m['id']}`"
            else:
                state = f"undo: `knowlm kg split --store {store} {m['id']}`"
            lines.append(
                f"- {html.escape(m['left']['name'])} → {html.escape(m['right']['name'])}: {m['rule']} "
                f"({m['score']:.2f}){where}; {state}"
            )
    return "\n".join(lines)


def _sentence(text: str, sentences: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """The bounds of the sentence(s) of ``text`` (``sentences``: `knowlm.ie.split.split_sentences`) that
    hold ``[start, end)``, leading space left out; the whole text when none does."""
    holding = [(s, e) for s, e in sentences if s < end and start < e]
    left, right = (holding[0][0], holding[-1][1]) if holding else (0, len(text))
    while left < start and text[left].isspace():
        left += 1
    return left, right


def mention_segments(evidence: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """An entity's mentions (`GraphStore.evidence`) as Gradio HighlightedText: for each, the sentence of each
    of its names (one sentence when they share it, " … " between two apart), the names marked with the role
    they play there (entity, or head / tail of the relation)."""
    roles = {"spans": "entity", "head_spans": "head", "tail_spans": "tail"}
    segments: list[tuple[str, str | None]] = []
    for mention in evidence:
        text, spans = mention["text"], sorted(mention["spans"])
        if not text or not spans:
            continue
        sentences = split_sentences(text)
        pieces: list[list[int]] = []
        for start, end, _ in spans:
            left, right = _sentence(text, sentences, start, end)
            if pieces and left <= pieces[-1][1]:
                pieces[-1][1] = max(pieces[-1][1], right)
            else:
                pieces.append([left, right])
        relation = mention["item"].get("relation")
        for n, (left, right) in enumerate(pieces):
            at = left
            for start, end, key in spans:
                if start < at or end > right:  # overlapping, or another piece's
                    continue
                segments.append((text[at:start], None))
                role = roles.get(key, "entity")
                segments.append(
                    (text[start:end], f"{role} of {relation}" if relation and role != "entity" else role)
                )
                at = end
            segments.append((text[at:right].rstrip() + (" … " if n < len(pieces) - 1 else ""), None))
        segments.append((f"  [{mention['source']} #{mention['document']}]\n", None))
    return [(t, label) for t, label in segments if t]


class Handlers:
    """What the web UI's buttons call, one method each (plain functions of their inputs, tested without a
    browser). Problems reach the user as `gr.Error` with the library's message."""

    def __init__(self, engine: Engine, kg_store: str | Path | None = None, *, kg_edit: bool = False) -> None:
        self.engine = engine
        self.kg_store = kg_store
        self.kg_edit = kg_edit
        self.store = None
        if kg_store is not None:
            from knowlm.kg.store import GraphStore

            self.store = GraphStore(kg_store, read_only=not kg_edit, must_exist=True)

    def stream_text(self, prompt: str, *controls: float) -> Iterator[str]:
        import gradio as gr

        if not prompt.strip():
            raise gr.Error("Enter a prompt first.")
        try:
            params = _params(*controls)
            if params.num_beams > 1:  # beams have no token stream
                yield self.engine.generate([prompt], params)[0].text
                return
            text = ""
            for piece in self.engine.stream(prompt, params):
                text += piece
                yield text
        except KnowLMError as exc:
            raise gr.Error(str(exc)) from exc

    def instruct(self, instruction: str, input_text: str, *controls: float) -> Iterator[str]:
        import gradio as gr

        if not instruction.strip():
            raise gr.Error("Enter an instruction first.")
        yield from self.stream_text(AlpacaTemplate().format(instruction, input_text or None), *controls)

    def extract(self, task: str, schema: str, text: str, *values: Any) -> tuple[Any, Any, str, str]:
        import gradio as gr

        if not text.strip():
            raise gr.Error("Enter a text to extract from.")
        options, sampling = values[: len(EXTRACT_FIELDS)], values[len(EXTRACT_FIELDS) :]
        try:
            config = settings_from(ExtractConfig, EXTRACT_FIELDS, options, task=task, schema=schema)
            extractor = Extractor.from_config(self.engine, config, params=_params(*sampling))
            result = extractor.extract(text)
        except KnowLMError as exc:
            raise gr.Error(str(exc)) from exc
        status = (
            f"{len(result.items)} items, {result.ungrounded} not found in the text; "
            f"answer {'read cleanly' if result.parsed else 'repaired: ' + '; '.join(result.problems)}"
        )
        triples = [(t.head, t.relation, t.tail) for t in result.triples]
        return highlighted(result), rows(result), graph_svg(triples), status

    def neighbourhood(self, name: str, limit: float) -> tuple[list[list[Any]], str, str, str, Any]:
        """An entity's relations (table and drawing), its names and merges, and its mentions in their text."""
        import gradio as gr

        if self.store is None:
            raise gr.Error("No knowledge graph: start the UI with --kg DIR.")
        if not name.strip():
            raise gr.Error("Enter an entity name.")
        found = self.store.neighbourhood(name, limit=int(limit))
        table = [[r["head"], r["relation"], r["tail"], r["support"]] for r in found]
        status = f"{len(found)} relations" if found else f"No relations of an entity named {name!r}."
        svg = graph_svg([(r["head"], r["relation"], r["tail"]) for r in found])
        merges = merges_markdown(self.store.explain(name), self.kg_store, editable=self.kg_edit)
        return table, svg, status, merges, mention_segments(self.store.evidence(name))

    def undo(self, merge_id: str, name: str, limit: float) -> tuple[Any, ...]:
        """Undo one merge (``knowlm kg split``) and show the entity again."""
        import gradio as gr

        if self.store is None or not self.kg_edit:
            raise gr.Error("Merges are undone from the UI only when it runs with --kg-edit.")
        try:
            self.store.split([merge_id.strip()])
        except KnowLMError as exc:
            raise gr.Error(str(exc)) from exc
        return self.neighbourhood(name, limit)


def build_ui(
    engine: Engine, *, title: str = "KnowLM", kg_store: str | Path | None = None, kg_edit: bool = False
) -> Any:
    """The web UI over ``engine``; with ``kg_store`` (a `knowlm kg build` store) also a knowledge-graph tab,
    where ``kg_edit`` allows undoing merges."""
    import gradio as gr

    handlers = Handlers(engine, kg_store, kg_edit=kg_edit)

    def decoding_controls() -> list[Any]:
        hints = typing.get_type_hints(SamplingParams)
        with gr.Accordion("Decoding", open=False):
            return [control(f, hints[f.name]) for f in SAMPLING_FIELDS]

    from knowlm.models.default import model_note

    note = model_note(engine.model_name)
    with gr.Blocks(title=title, analytics_enabled=False) as ui:
        gr.Markdown(f"# {title}\nModel: `{engine.model_name}` ({engine.name} engine)")
        with gr.Tab("Extract"):
            task = gr.Dropdown(task_names(), value="ner", label="task")
            schema = gr.Textbox(
                label="schema",
                value="人物,地点,公司",
                info="comma-separated; ee: type:role1|role2; kg: type:attr1|attr2; spo: subj_pred_obj",
            )
            text = gr.Textbox(label="text", lines=4, elem_id="extract-text")
            hints = typing.get_type_hints(ExtractConfig)
            with gr.Accordion("Options", open=False):
                options = [control(f, hints[f.name]) for f in EXTRACT_FIELDS]
            sampling = decoding_controls()
            run = gr.Button("Extract", variant="primary", elem_id="extract-button")
            status = gr.Markdown(elem_id="extract-status")
            spans = gr.HighlightedText(label="in the text", combine_adjacent=False)
            table = gr.Dataframe(
                headers=["kind", "type", "text", "head", "details", "confidence", "grounded"],
                label="results",
                elem_id="extract-table",
                interactive=False,
            )
            graph = gr.HTML(label="graph")
            gr.Examples(EXAMPLES, [task, schema, text])
            run.click(
                handlers.extract, [task, schema, text, *options, *sampling], [spans, table, graph, status]
            )
        with gr.Tab("Instruction"):
            if note:
                gr.Markdown(f"*{note}*", elem_id="model-note")
            instruction = gr.Textbox(label="instruction", lines=3)
            input_text = gr.Textbox(label="input (optional)", lines=3)
            controls = decoding_controls()
            answer = gr.Textbox(label="response", lines=8)
            gr.Button("Run", variant="primary").click(
                handlers.instruct, [instruction, input_text, *controls], answer
            )
            gr.Examples(
                [
                    ["请从下面的句子中找出人名。", "马云在杭州创立了阿里巴巴。"],
                    ["Name the capital of the country.", "France"],
                ],
                [instruction, input_text],
            )
        with gr.Tab("Generate"):
            prompt = gr.Textbox(label="prompt", lines=4)
            controls_g = decoding_controls()
            output = gr.Textbox(label="completion", lines=8)
            gr.Button("Generate", variant="primary").click(
                handlers.stream_text, [prompt, *controls_g], output
            )
            gr.Examples([["The capital of France is"], ["浙江大学位于"]], [prompt])
        if handlers.store is not None:
            with gr.Tab("Knowledge graph"):
                gr.Markdown(
                    f"Store: `{kg_store}` ({handlers.store.stats()['statements']} relation statements)"
                )
                with gr.Row(equal_height=True):
                    entity = gr.Textbox(label="entity", elem_id="kg-entity", scale=3)
                    limit = gr.Slider(5, 500, value=50, step=5, label="at most", scale=1)
                    show = gr.Button("Show", variant="primary", elem_id="kg-button", scale=0)
                kg_status = gr.Markdown(elem_id="kg-status")
                kg_graph = gr.HTML(label="neighbourhood")
                kg_table = gr.Dataframe(
                    headers=["head", "relation", "tail", "support"], interactive=False, elem_id="kg-table"
                )
                kg_merges = gr.Markdown(elem_id="kg-merges")
                kg_mentions = gr.HighlightedText(
                    label="mentions (the sentence of each)", combine_adjacent=False, elem_id="kg-mentions"
                )
                shown = [kg_table, kg_graph, kg_status, kg_merges, kg_mentions]
                for event in (show.click, entity.submit):
                    event(handlers.neighbourhood, [entity, limit], shown)
                if kg_edit:
                    with gr.Row(equal_height=True):
                        merge_id = gr.Textbox(label="merge id (from the list above)", elem_id="kg-merge-id")
                        undo = gr.Button("Undo merge", elem_id="kg-undo", scale=0)
                    undo.click(handlers.undo, [merge_id, entity, limit], shown)
    return ui

"""The Gradio web UI: generation, instruction (Alpaca, as KnowLM's LoRA page) and extraction tabs.

It calls the same library functions as the CLI and the API (the engine protocol and `Extractor`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowlm.config import SamplingParams
from knowlm.engines.base import Engine
from knowlm.errors import KnowLMError
from knowlm.ie.extractor import ExtractionResult, Extractor
from knowlm.ie.results import Entity, Event, Triple
from knowlm.ie.tasks import task_names
from knowlm.prompts import AlpacaTemplate

# task, schema, text, schema items per prompt (0 = the task's default); those of `make demo`
EXAMPLES = [
    ["ner", "人物,地点,公司", "马云在杭州创立了阿里巴巴集团。", 0],
    ["ner", "person,organization,location", "Tim Cook leads Apple from Cupertino, California.", 0],
    ["re", "创始人,总部位于", "马云在杭州创立了阿里巴巴集团。", 1],
    ["re", "founder,headquartered_in", "Steve Jobs founded Apple, which is headquartered in Cupertino.", 1],
    ["ee", "裁员:裁员方|裁员人数|时间", "5月份甲骨文在华裁员900余人。", 0],
    [
        "kg",
        "person:birth_date|nationality|occupation",
        "Marie Curie, born in 1867 in Warsaw, was a Polish physicist.",
        0,
    ],
]


def _params(
    max_new_tokens: float,
    temperature: float,
    top_p: float,
    top_k: float,
    beams: float,
    repetition_penalty: float,
) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=int(max_new_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=int(top_k),
        num_beams=int(beams),
        repetition_penalty=float(repetition_penalty),
    )


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
    """One table row per item: kind, type/relation, text, head, details, grounded."""
    table = []
    for item in result.items:
        if isinstance(item, Entity):
            table.append(["entity", item.type, item.text, "", "", item.grounded])
        elif isinstance(item, Triple):
            table.append(["triple", item.relation, item.tail, item.head, item.head_type or "", item.grounded])
        else:
            args = "; ".join(f"{a.role}={a.text}" for a in item.arguments)
            table.append(["event", item.type, item.trigger or "", "", args, item.grounded])
    return table


def graph_svg(triples: list[tuple[str, str, str]], size: int = 420) -> str:
    """(head, relation, tail) triples as a small SVG graph (entities on a circle, labelled arrows)."""
    if not triples:
        return "<p>No triples to draw.</p>"
    names = list(dict.fromkeys(n for head, _, tail in triples for n in (head, tail)))
    radius, center = size * 0.36, size / 2
    pos = {
        n: (
            center + radius * math.cos(2 * math.pi * i / len(names)),
            center + radius * math.sin(2 * math.pi * i / len(names)),
        )
        for i, n in enumerate(names)
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" font-size="12">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="3" orient="auto">'
        '<path d="M0,0 L0,6 L8,3 z" fill="#888"/></marker></defs>',
    ]
    for head, relation, tail in triples:
        (x1, y1), (x2, y2) = pos[head], pos[tail]
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#888" '
            'marker-end="url(#arrow)"/>'
        )
        parts.append(
            f'<text x="{(x1 + x2) / 2:.0f}" y="{(y1 + y2) / 2:.0f}" fill="#b45309">{html.escape(relation)}</text>'
        )
    for name, (x, y) in pos.items():
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="5" fill="#2563eb"/>'
            f'<text x="{x + 7:.0f}" y="{y - 7:.0f}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def build_ui(engine: Engine, *, title: str = "KnowLM", kg_store: str | Path | None = None) -> Any:
    """The web UI over ``engine``; with ``kg_store`` (a `knowlm kg build` store) also a knowledge-graph tab."""
    import gradio as gr

    store = None
    if kg_store is not None:
        from knowlm.kg.store import GraphStore

        store = GraphStore(kg_store, read_only=True)

    def neighbourhood(name: str, limit: float) -> tuple[list[list[Any]], str, str]:
        if store is None:
            raise gr.Error("No knowledge graph: start the UI with --kg DIR.")
        if not name.strip():
            raise gr.Error("Enter an entity name.")
        found = store.neighbourhood(name, limit=int(limit))
        table = [[r["head"], r["relation"], r["tail"], r["support"]] for r in found]
        status = f"{len(found)} relations" if found else f"No relations of an entity named {name!r}."
        return table, graph_svg([(r["head"], r["relation"], r["tail"]) for r in found]), status

    def decoding_controls() -> list[Any]:
        with gr.Accordion("Decoding", open=False):
            return [
                gr.Slider(1, 1024, value=128, step=1, label="max new tokens"),
                gr.Slider(0, 2, value=0, step=0.05, label="temperature (0 = greedy)"),
                gr.Slider(0.05, 1, value=1, step=0.05, label="top_p"),
                gr.Slider(0, 200, value=0, step=1, label="top_k (0 = off)"),
                gr.Slider(1, 8, value=1, step=1, label="beams (transformers engine)"),
                gr.Slider(0.8, 2, value=1, step=0.05, label="repetition penalty"),
            ]

    def stream_text(prompt: str, *controls: float) -> Iterator[str]:
        if not prompt.strip():
            raise gr.Error("Enter a prompt first.")
        params = _params(*controls)
        try:
            if params.num_beams > 1:  # beams have no token stream
                yield engine.generate([prompt], params)[0].text
                return
            text = ""
            for piece in engine.stream(prompt, params):
                text += piece
                yield text
        except KnowLMError as exc:
            raise gr.Error(str(exc)) from exc

    def instruct(instruction: str, input_text: str, *controls: float) -> Iterator[str]:
        if not instruction.strip():
            raise gr.Error("Enter an instruction first.")
        yield from stream_text(AlpacaTemplate().format(instruction, input_text or None), *controls)

    def extract(
        task: str,
        schema: str,
        text: str,
        lang: str,
        constrained: bool,
        drop: bool,
        max_new_tokens: float,
        per_prompt: float | None,
    ) -> tuple[Any, Any, str, str]:
        if not text.strip():
            raise gr.Error("Enter a text to extract from.")
        try:
            extractor = Extractor(
                engine,
                task,
                schema,
                lang=lang,
                constrained=constrained,
                drop_ungrounded=drop,
                schema_batch_size=int(per_prompt or 0) or None,
                params=SamplingParams(max_new_tokens=int(max_new_tokens)),
            )
            result = extractor.extract(text)
        except KnowLMError as exc:
            raise gr.Error(str(exc)) from exc
        status = (
            f"{len(result.items)} items, {result.ungrounded} not found in the text; "
            f"answer {'read cleanly' if result.parsed else 'repaired: ' + '; '.join(result.problems)}"
        )
        triples = [(t.head, t.relation, t.tail) for t in result.triples]
        return highlighted(result), rows(result), graph_svg(triples), status

    from knowlm.models.default import model_note

    note = model_note(engine.model_name)
    with gr.Blocks(title=title, analytics_enabled=False) as ui:
        gr.Markdown(f"# {title}\nModel: `{engine.model_name}` ({engine.name} engine)")
        with gr.Tab("Extract"):
            with gr.Row():
                task = gr.Dropdown(task_names(), value="ner", label="task")
                lang = gr.Dropdown(["auto", "zh", "en"], value="auto", label="instruction language")
                max_tokens = gr.Slider(16, 1024, value=128, step=16, label="max new tokens")
            schema = gr.Textbox(
                label="schema",
                value="人物,地点,公司",
                info="comma-separated; ee: type:role1|role2; kg: type:attr1|attr2; spo: subj_pred_obj",
            )
            text = gr.Textbox(label="text", lines=4, elem_id="extract-text")
            with gr.Row():
                constrained = gr.Checkbox(value=True, label="constrained JSON")
                drop = gr.Checkbox(value=False, label="drop ungrounded")
                per_prompt = gr.Number(
                    value=0,
                    precision=0,
                    minimum=0,
                    label="schema items per prompt (0 = the task's default)",
                    info="1 asks each relation alone: slower, finds more relations per sentence",
                )
            run = gr.Button("Extract", variant="primary", elem_id="extract-button")
            status = gr.Markdown(elem_id="extract-status")
            spans = gr.HighlightedText(label="in the text", combine_adjacent=False)
            table = gr.Dataframe(
                headers=["kind", "type", "text", "head", "details", "grounded"],
                label="results",
                elem_id="extract-table",
                interactive=False,
            )
            graph = gr.HTML(label="graph")
            gr.Examples(EXAMPLES, [task, schema, text, per_prompt])
            run.click(
                extract,
                [task, schema, text, lang, constrained, drop, max_tokens, per_prompt],
                [spans, table, graph, status],
            )
        with gr.Tab("Instruction"):
            if note:
                gr.Markdown(f"*{note}*", elem_id="model-note")
            instruction = gr.Textbox(label="instruction", lines=3)
            input_text = gr.Textbox(label="input (optional)", lines=3)
            controls = decoding_controls()
            answer = gr.Textbox(label="response", lines=8)
            gr.Button("Run", variant="primary").click(instruct, [instruction, input_text, *controls], answer)
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
            gr.Button("Generate", variant="primary").click(stream_text, [prompt, *controls_g], output)
            gr.Examples([["The capital of France is"], ["浙江大学位于"]], [prompt])
        if store is not None:
            with gr.Tab("Knowledge graph"):
                gr.Markdown(f"Store: `{kg_store}` ({store.stats()['statements']} relation statements)")
                with gr.Row():
                    entity = gr.Textbox(label="entity", elem_id="kg-entity", scale=3)
                    limit = gr.Slider(5, 500, value=50, step=5, label="at most", scale=1)
                kg_status = gr.Markdown(elem_id="kg-status")
                kg_table = gr.Dataframe(
                    headers=["head", "relation", "tail", "support"], interactive=False, elem_id="kg-table"
                )
                kg_graph = gr.HTML(label="neighbourhood")
                gr.Button("Show", variant="primary", elem_id="kg-button").click(
                    neighbourhood, [entity, limit], [kg_table, kg_graph, kg_status]
                )
    return ui

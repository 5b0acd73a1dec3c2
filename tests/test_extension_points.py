"""An engine and a task registered from outside the package work end to end: configuration, extraction,
constrained decoding and evaluation (register_engine / register_task are the extension points)."""

import json
import re
from pathlib import Path

import pytest

from knowlm.cli.main import main
from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.base import Completion, engine_names, register_engine
from knowlm.errors import InputError
from knowlm.ie.extractor import Extractor
from knowlm.ie.results import Entity, Item
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.tasks import Reading, Task, register_task, task_names

TASK, ENGINE = "termx", "scripted_termx"


def read_terms(value, schema: Schema, reading: Reading) -> list[Item]:
    items: list[Item] = []
    if isinstance(value, dict):
        reading.matched = all(name in value for name in schema.names)
        for name, terms in value.items():
            if name not in schema.names:
                reading.unknown.append(name)
                continue
            items += [Entity(name, t) for t in terms if isinstance(t, str) and t.strip()]
    return items


def write_terms(items: list[Item], schema: Schema) -> dict:
    answer: dict = {name: [] for name in schema.names}
    for item in items:
        if isinstance(item, Entity) and item.type in answer:
            answer[item.type].append(item.text)
    return answer


class ScriptedEngine:
    """Answers every OneKE prompt with the capitalized words of its input, under the first schema item."""

    name, model_name = ENGINE, "scripted"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def generate(self, prompts, params: SamplingParams) -> list[Completion]:
        out = []
        for prompt in prompts:
            body = json.loads(prompt)
            words = re.findall(r"\b[A-Z][a-z]+\b", body["input"])
            out.append(Completion(json.dumps({body["schema"][0]: words}), 1, 1, "stop"))
        return out

    def stream(self, prompt, params):
        yield self.generate([prompt], params)[0].text

    def render_chat(self, messages):
        return None

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.fixture(scope="module", autouse=True)
def registered():
    if TASK not in task_names():
        register_task(
            Task(
                name=TASK,
                title="terminology extraction",
                kind="entity",
                instructions={"zh": "找出input中的术语。", "en": "List the technical terms of the input."},
                batch_size=4,
                schema_entry=lambda item: item.name,
                reader=read_terms,
                writer=write_terms,
                value_schema=lambda item: {"type": "array", "items": {"type": "string"}},
                metrics=("entity",),
                prompt_texts={
                    "json": ("找出术语：{schema}。", "Find the terms: {schema}. Answer with a JSON list.")
                },
                gold_entry=lambda entry: Entity(entry["type"], entry["term"]) if "term" in entry else None,
            )
        )
    if ENGINE not in engine_names():
        register_engine(ENGINE, f"{__name__}:ScriptedEngine")


def test_a_registered_engine_is_accepted_by_the_configuration_and_runs_a_registered_task():
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model="anything", engine=ENGINE))
    assert isinstance(engine, ScriptedEngine)
    extractor = Extractor(engine, TASK, "term", template="raw")
    result = extractor.extract("Transformers and Attention changed NLP.")
    assert [(e.type, e.text, e.spans) for e in result.items] == [
        ("term", "Transformers", [(0, 12)]),
        ("term", "Attention", [(17, 26)]),
    ]
    assert (
        json.loads(extractor.prompts_for("x")[0][1])["instruction"]
        == "List the technical terms of the input."
    )


def test_the_default_model_carries_how_it_is_best_asked_and_other_models_do_not(knowlm_cache):
    """``--model default`` with KnowLM's adapter says how it is asked (what prompt_format auto and an unset
    schema batch size mean); the plain base model and any other model say nothing."""
    from knowlm.engines import create_engine
    from knowlm.models.default import DEFAULT_IE_OPTIONS, default_adapter

    if default_adapter() is None:
        pytest.skip("the package ships no IE adapter")
    shipped = create_engine(ModelConfig(model="default", engine=ENGINE))
    assert shipped.config.adapter is not None and shipped.ie_options == DEFAULT_IE_OPTIONS
    assert DEFAULT_IE_OPTIONS["re"] == {"ask_each_up_to": 4, "text_first_over": 32}
    base = create_engine(ModelConfig(model="default", engine=ENGINE, no_adapter=True))
    other = create_engine(ModelConfig(model="anything", engine=ENGINE))
    assert not hasattr(base, "ie_options") and not hasattr(other, "ie_options")


def test_constrained_decoding_follows_the_registered_tasks_answer_schema(tiny_engine):
    extractor = Extractor(
        tiny_engine,
        TASK,
        "term,tool",
        constrained=True,
        params=SamplingParams(max_new_tokens=300, temperature=1.0, seed=3),
    )
    text = "Knowledge graphs store facts as triples."
    for output in extractor.extract(text).outputs:
        answer = json.loads(output)  # the grammar admits only the task's JSON shape, strings from the text
        assert set(answer) == {"term", "tool"}
        assert all(isinstance(v, list) and all(s in text for s in v) for v in answer.values())


def test_evaluation_scores_a_registered_task(tmp_path: Path, capsys):
    body = {
        "instruction": "List the technical terms of the input.",
        "schema": ["term"],
        "input": "Use Python.",
    }
    line = {"id": "1", "task": TASK, "instruction": json.dumps(body), "label": {"term": ["Python"]}}
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({**line, "output": '{"term": ["Python"]}'}) + "\n")
    assert main(["eval", "--gold", str(gold), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["task"], report["metric"], report["f1"]) == (TASK, "entity", 1.0)
    assert (
        main(["eval", "--data", str(gold), "--model", "x", "--engine", ENGINE, "--template", "raw", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)  # the scripted engine answers "Use" and "Python"
    assert (report["precision"], report["recall"]) == (0.5, 1.0)


def test_a_registered_tasks_prompt_texts_and_list_gold_are_its_own(tmp_path: Path, capsys):
    from knowlm.ie.evaluate import read_gold
    from knowlm.ie.formats import get_format

    extractor = Extractor(
        ScriptedEngine(ModelConfig()), TASK, "term", template="raw", prompt_format="knowlm-json"
    )
    assert extractor.prompts_for("Use Python.")[0][1].startswith("Find the terms: term.")
    assert read_gold(TASK, [{"type": "term", "term": "Python"}, {"other": 1}]) == [Entity("term", "Python")]
    with pytest.raises(InputError, match="does not support task 'termx'"):
        get_format("knowlm-tuple", TASK)


def test_a_registered_dataset_format_converts_and_appears_in_the_cli(tmp_path: Path, capsys):
    from knowlm.ie.convert import DatasetFormat, Document, dataset_formats, register_dataset
    from knowlm.ie.schema import SchemaItem

    def read_glossary(path: Path, stats, detokenize: bool):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text, term = line.split("\t")
            start = text.index(term)
            yield Document(
                f"glossary-{number}", text, [Entity("term", term, [(start, start + len(term))])], "en"
            )

    if "glossary" not in dataset_formats():
        register_dataset(
            DatasetFormat(
                "glossary",
                read_glossary,
                "TSV of text and term",
                lambda p: Schema("ner", (SchemaItem("term"),)),
            )
        )
    source = tmp_path / "g.tsv"
    source.write_text("Use Python here.\tPython\n", encoding="utf-8")
    out = tmp_path / "g.jsonl"
    assert main(["data", "convert-ie", "glossary", str(source), "--out", str(out), "--mode", "eval"]) == 0
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert json.loads(record["output"]) == {"term": ["Python"]}


def test_registered_export_formats_are_offered_by_the_cli(tmp_path: Path, capsys):
    from knowlm.ie.export import exporter_names, register_exporter
    from knowlm.kg.export import graph_exporter_names, register_graph_exporter

    if "count" not in exporter_names():
        register_exporter("count", lambda records: f"{sum(len(r['results']) for r in records)}\n")
    if "names" not in graph_exporter_names():
        register_graph_exporter(
            "names", lambda store, out, _: out.write_text("\n".join(sorted(store.stats())) + "\n")
        )
    out = tmp_path / "terms.count"
    args = [
        "extract",
        "--task",
        TASK,
        "--schema",
        "term",
        "--model",
        "x",
        "--engine",
        ENGINE,
        "--template",
        "raw",
    ]
    assert main([*args, "--text", "Use Python and Rust.", "--format", "count", "--output", str(out)]) == 0
    assert out.read_text() == "3\n"  # the scripted engine answers Use, Python and Rust
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"id": 1, "text": "A B", "task": "re", "results": [
        {"head": "A", "relation": "r", "tail": "B"}]}) + "\n")  # fmt: skip
    assert main(["kg", "build", str(records), "--store", str(tmp_path / "kg")]) == 0
    graph = tmp_path / "names.txt"
    assert (
        main(["kg", "export", "--store", str(tmp_path / "kg"), "--format", "names", "--output", str(graph)])
        == 0
    )
    assert "statements" in graph.read_text()


def test_a_registered_weight_format_is_written_and_offered_by_the_cli(
    tiny_model_dir, tmp_path: Path, request
):
    import numpy as np

    from knowlm.weights.formats import WEIGHT_FORMATS, WeightFormat, register_weight_format

    def save_npz(tensors, path: Path) -> None:
        with path.open("wb") as f:  # np.savez would add its own suffix to a path
            np.savez(f, **{k: v.float().numpy() for k, v in tensors.items()})

    register_weight_format("npz", WeightFormat("weights", "npz", save_npz))
    request.addfinalizer(lambda: WEIGHT_FORMATS.pop("npz"))  # other tests see the shipped formats
    out = tmp_path / "diff"
    args = [
        "weights",
        "diff",
        "--base",
        str(tiny_model_dir),
        "--tuned",
        str(tiny_model_dir),
        "--out",
        str(out),
    ]
    assert main([*args, "--format", "npz"]) == 0
    with np.load(out / "weights.npz") as saved:  # one shard: the format's own name
        assert saved.files and all(not saved[k].any() for k in saved.files)  # a model minus itself
    assert (out / "checksums.json").exists() and (out / "config.json").exists()
    with pytest.raises(SystemExit):  # argparse refuses a format nobody registered
        main([*args[:-1], str(tmp_path / "other"), "--format", "npy"])


def test_a_registered_kg2instruct_task_makes_records_from_the_cli(tmp_path: Path, request):
    from knowlm.ie.kg2instruct import KG_TASKS, register_kg_task

    def subjects(hits, kg):  # the heads of the matched triples, as entities of one type
        return [Entity("subject", t.head) for t in hits], Schema("ner", (SchemaItem("subject"),))

    register_kg_task("subjects", subjects)
    request.addfinalizer(lambda: KG_TASKS.pop("subjects"))
    examples = Path(__file__).resolve().parents[1] / "examples" / "data" / "kg"
    out = tmp_path / "records.jsonl"
    args = ["kg2instruct", "--kg", str(examples / "triples.tsv"), "--corpus", str(examples / "corpus.txt")]
    assert main([*args, "--out", str(out), "--tasks", "subjects", "--negatives", "0"]) == 0
    outputs = [json.loads(json.loads(line)["output"]) for line in out.read_text().splitlines()]
    assert {"subject": ["Apple"]} in outputs and all(list(o) == ["subject"] for o in outputs)

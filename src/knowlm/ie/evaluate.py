"""Evaluation: micro precision / recall / F1 the way the OneKE / IEPile evaluation counts, and running a
model over an evaluation file (`generate_answers`), used by `knowlm eval` and `knowlm finetune --eval-ie`.

Entities count as (type, text); triples as (head, relation, tail); events by trigger (event type, trigger)
and by argument (event type, role, text). Each document's gold and predicted items are sets; counts are
summed over documents (micro average).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowlm.config import records_per_call
from knowlm.errors import InputError
from knowlm.ie.confidence import passes, set_confidences
from knowlm.ie.formats import parse_oneke_instruction
from knowlm.ie.parse import read_json
from knowlm.ie.results import Entity, Event, Item, Triple, item_from_dict
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.tasks import get_task, parse_schema
from knowlm.io import read_jsonl, run_resumable

if TYPE_CHECKING:
    from knowlm.config import SamplingParams
    from knowlm.engines.base import Engine
    from knowlm.prompts import PromptTemplate


def keys(item: Item, metric: str) -> list[tuple[str, ...]]:
    if metric == "argument":
        return item.argument_keys() if isinstance(item, Event) else []
    return [item.key()]


@dataclass
class Counts:
    tp: int = 0
    predicted: int = 0
    gold: int = 0

    def add(self, gold: set[tuple[str, ...]], pred: set[tuple[str, ...]]) -> None:
        self.tp += len(gold & pred)
        self.predicted += len(pred)
        self.gold += len(gold)

    def report(self) -> dict[str, Any]:
        p = self.tp / self.predicted if self.predicted else 0.0
        r = self.tp / self.gold if self.gold else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f1, 4),
            "tp": self.tp,
            "predicted": self.predicted,
            "gold": self.gold,
        }


@dataclass
class Answer:
    """A model's answer to one evaluation line, with its tokens' log-probabilities when the engine gave
    them (`knowlm.engines.base.Completion.logprobs`), from which its items' confidences are read."""

    text: str
    logprobs: list[tuple[str, float]] | None = None


@dataclass
class Document:
    id: str
    gold: list[Item]
    pred: list[Item] = field(default_factory=list)
    outputs: int = 0
    parse_failures: int = 0
    names: dict[str, str] = field(default_factory=dict)


def score(task: str, documents: Iterable[Document], *, rounds: int = 1000) -> dict[str, Any]:
    """The evaluation report: headline P/R/F1 with a 95% bootstrap interval for F1, every metric,
    per-type F1, a confusion table and the parse-failure rate.

    The interval resamples documents (``rounds`` times, fixed seed). The confusion table counts, per gold
    type, the gold items that were missed under their type but predicted, same text otherwise, under
    another type (``{gold type: {predicted type: n}}``)."""
    metrics = get_task(task).metrics  # what is counted; the first is the headline
    totals = {m: Counts() for m in metrics}
    by_type: dict[str, Counts] = defaultdict(Counts)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_doc: list[tuple[int, int, int]] = []
    judged: list[tuple[float, bool]] = []  # (confidence, correct) of each predicted headline key
    slot = 1 if metrics[0] == "triple" else 0  # where the type sits in a headline key (head, relation, tail)
    n_docs = outputs = failures = 0
    for doc in documents:
        n_docs += 1
        outputs += doc.outputs
        failures += doc.parse_failures
        for metric in metrics:
            gold = {k for item in doc.gold for k in keys(item, metric)}
            pred = {k for item in doc.pred for k in keys(item, metric)}
            totals[metric].add(gold, pred)
            if metric != metrics[0]:
                continue
            per_doc.append((len(gold & pred), len(pred), len(gold)))
            judged.extend((c, k in gold) for k, c in _confidences(doc.pred, metric).items())
            for name in {k[slot] for k in gold | pred}:
                by_type[name].add({k for k in gold if k[slot] == name}, {k for k in pred if k[slot] == name})
            _confuse(confusion, gold - pred, pred - gold, slot)
    report = {"task": task, "documents": n_docs, "metric": metrics[0], **totals[metrics[0]].report()}
    report["f1_ci95"] = bootstrap_f1(per_doc, rounds)
    report["metrics"] = {m: c.report() for m, c in totals.items()}
    report["by_type"] = {name: c.report() for name, c in sorted(by_type.items())}
    report["confusion"] = {g: dict(sorted(p.items())) for g, p in sorted(confusion.items())}
    report["outputs"] = outputs
    report["parse_failures"] = failures
    report["parse_failure_rate"] = round(failures / outputs, 4) if outputs else 0.0
    if judged:
        report["calibration"] = calibration(judged, totals[metrics[0]].gold)
    return report


def _confidences(items: list[Item], metric: str) -> dict[tuple[str, ...], float]:
    """Each predicted key's confidence (the highest of the items giving it), for items that have one."""
    out: dict[tuple[str, ...], float] = {}
    for item in items:
        if item.confidence is not None:
            for k in keys(item, metric):
                out[k] = max(out.get(k, 0.0), item.confidence)
    return out


THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def calibration(judged: list[tuple[float, bool]], gold: int, bins: int = 10) -> dict[str, Any]:
    """How well confidences predict correctness: the expected calibration error (ECE: the mean gap
    between confidence and accuracy over ``bins`` equal-width bins, weighted by their size), the
    reliability table (per bin: items, mean confidence, share correct) and precision / recall / F1 of
    the items kept at each threshold of `THRESHOLDS` (``gold``: the gold count recall is out of)."""
    table = []
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in judged if low <= c < high or (b == bins - 1 and c == 1.0)]
        if not inside:
            continue
        confidence = sum(c for c, _ in inside) / len(inside)
        accuracy = sum(ok for _, ok in inside) / len(inside)
        ece += len(inside) / len(judged) * abs(confidence - accuracy)
        table.append({"bin": [low, high], "items": len(inside), "confidence": round(confidence, 4),
                      "accuracy": round(accuracy, 4)})  # fmt: skip
    thresholds = []
    for t in THRESHOLDS:
        kept = [ok for c, ok in judged if c >= t]
        counts = Counts(tp=sum(kept), predicted=len(kept), gold=gold)
        thresholds.append({"min_confidence": t, **counts.report()})
    return {"items": len(judged), "ece": round(ece, 4), "reliability": table, "thresholds": thresholds}


def keep_confident(documents: Iterable[Document], threshold: float) -> list[Document]:
    """The documents with only the predictions whose confidence is at least ``threshold`` (0: all)."""
    docs = list(documents)
    for doc in docs:
        doc.pred = [i for i in doc.pred if passes(i.confidence, threshold)]
    return docs


def _confuse(
    table: dict[str, dict[str, int]], missed: set[tuple[str, ...]], extra: set[tuple[str, ...]], slot: int
) -> None:
    """Count missed gold keys that were predicted with only their type (at ``slot``) changed."""
    rest = defaultdict(set)
    for k in extra:
        rest[k[:slot] + k[slot + 1 :]].add(k[slot])
    for k in missed:
        for other in rest.get(k[:slot] + k[slot + 1 :], ()):
            table[k[slot]][other] += 1


def bootstrap_f1(per_doc: list[tuple[int, int, int]], rounds: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile interval of micro F1 over documents resampled with replacement.

    ``per_doc`` holds (true positives, predicted, gold) per document."""
    if not per_doc or rounds < 1:
        return [0.0, 0.0]
    import numpy as np

    counts = np.asarray(per_doc, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(counts), size=(rounds, len(counts)))
    tp, pred, gold = (counts[:, i][picks].sum(axis=1) for i in range(3))
    f1 = np.where(pred + gold > 0, 2 * tp / np.maximum(pred + gold, 1), 0.0)
    low, high = np.percentile(f1, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def format_report(report: dict[str, Any]) -> str:
    """A readable table of a report."""
    low, high = report.get("f1_ci95", [0.0, 0.0])
    lines = [
        f"task {report['task']}: {report['documents']} documents, parse failures "
        f"{report['parse_failures']}/{report['outputs']} ({report['parse_failure_rate']:.1%}); "
        f"F1 {report['f1']:.2%} (95% interval {low:.2%} - {high:.2%})",
        "",
    ]
    lines.append(f"{'':<24} {'P':>7} {'R':>7} {'F1':>7} {'gold':>6} {'pred':>6}")
    rows = [(f"[{m}]", r) for m, r in report["metrics"].items()] + list(report["by_type"].items())
    for name, r in rows:
        lines.append(
            f"{name[:24]:<24} {r['precision']:>7.2%} {r['recall']:>7.2%} {r['f1']:>7.2%} "
            f"{r['gold']:>6} {r['predicted']:>6}"
        )
    if "calibration" in report:
        cal = report["calibration"]
        kept = "; ".join(
            f">= {t['min_confidence']}: P {t['precision']:.2%} R {t['recall']:.2%} F1 {t['f1']:.2%}"
            for t in cal["thresholds"][1:5]
        )
        lines += ["", f"confidence: ECE {cal['ece']:.3f} over {cal['items']} predictions; keeping {kept}"]
    return "\n".join(lines)


# ---- gold labels ------------------------------------------------------------------------------------


def read_gold(task: str, label: Any) -> list[Item]:
    """Gold items from a label: a list in the InstructKGC sample form, or an answer keyed by item."""
    if isinstance(label, str):
        read = read_json(label)
        if not read.found:
            raise InputError(f"label is not JSON: {label[:80]!r}")
        label = read.value
    t = get_task(task)
    if isinstance(label, dict):
        schema = Schema(t.name, tuple(SchemaItem(str(k)) for k in label))
        return t.read_answer(label, schema)[0]
    if not isinstance(label, list):
        raise InputError(f"label must be a list or an object, got {type(label).__name__}")
    if t.gold_entry is None:
        raise InputError(f"task {t.name} reads gold labels keyed by schema item only, not as a list")
    entries = [t.gold_entry(entry) for entry in label if isinstance(entry, dict)]
    return [item for item in entries if item is not None]


# ---- OneKE / IEPile evaluation files ----------------------------------------------------------------


@dataclass
class EvalLine:
    number: int
    id: str
    task: str
    schema: Schema
    instruction: str
    """The line's instruction field as given (the prompt OneKE models take)."""
    label: Any
    output: str | None
    names: dict[str, str] = field(default_factory=dict)
    """Other names of the document's entities -> the names its gold uses (DocRED's aliases)."""


def canonical(item: Item, names: dict[str, str]) -> Item:
    """``item`` with every entity name replaced by the name the gold uses for that entity."""
    if isinstance(item, Triple) and (item.head in names or item.tail in names):
        return replace(item, head=names.get(item.head, item.head), tail=names.get(item.tail, item.tail))
    if isinstance(item, Entity) and item.text in names:
        return replace(item, text=names[item.text])
    return item


def read_eval_file(path: str | Path, task: str | None = None) -> list[EvalLine]:
    """Read a OneKE/IEPile evaluation file: id, instruction (JSON string), label, output (optional).

    Training-format records (instruction and output, no label) are read with the output as the gold,
    so held-out training data can be scored with ``--data``.
    """
    lines = []
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        line_task = (task or str(record.get("task", ""))).lower()
        if not line_task:
            raise InputError(f"{where}: no 'task' field; pass --task")
        if "instruction" not in record:
            raise InputError(f"{where}: missing 'instruction'")
        if "label" not in record and "output" not in record:
            raise InputError(f"{where}: missing 'label' (the gold answer)")
        if "label" not in record:  # a training-format record: its output is the gold answer
            record = {**record, "label": record["output"], "output": None}
        instruction = record["instruction"]
        body = parse_oneke_instruction(instruction, where)
        schema = parse_schema(get_task(line_task).name, body["schema"], source=f"{where} schema")
        text = instruction if isinstance(instruction, str) else json.dumps(instruction, ensure_ascii=False)
        output = record.get("output")
        names = record.get("names", {})
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise InputError(f"{where}: 'names' must be an object of name -> the gold's name for it")
        lines.append(
            EvalLine(
                number,
                str(record.get("id", f"line{number}")),
                line_task,
                schema,
                text,
                record["label"],
                output if isinstance(output, str) else None,
                names,
            )
        )
    if not lines:
        raise InputError(f"{path}: no records")
    return lines


def documents_from_lines(
    lines: list[EvalLine], outputs: dict[int, str] | dict[int, Answer] | None = None
) -> list[Document]:
    """Merge lines of the same id (one document split by schema batches) and read their answers.

    ``outputs`` maps line numbers to model answers (texts, or `Answer`s whose log-probabilities give each
    item its confidence); by default each line's own ``output`` is used.
    """
    docs: dict[str, Document] = {}
    for line in lines:
        task = get_task(line.task)
        doc = docs.get(line.id)
        if doc is None:
            doc = docs[line.id] = Document(line.id, [])
        # each line's label holds (at least) the gold of its schema batch; scoring works on sets, so a
        # label repeated on every line of a document counts once
        doc.names.update(line.names)
        doc.gold.extend(canonical(i, line.names) for i in read_gold(line.task, line.label))
        answer = outputs.get(line.number) if outputs is not None else line.output
        if answer is None:
            continue
        output, logprobs = (answer.text, answer.logprobs) if isinstance(answer, Answer) else (answer, None)
        doc.outputs += 1
        read = read_json(output)
        items, reading = task.read_answer(read.value, line.schema) if read.value is not None else ([], None)
        set_confidences(output, logprobs, items)
        if not (read.found and read.complete and reading is not None and reading.matched):
            doc.parse_failures += 1
        doc.pred.extend(canonical(i, line.names) for i in items)
    return list(docs.values())


def apply_predictions(path: str | Path, lines: list[EvalLine]) -> list[Document]:
    """Documents scored against a separate prediction file.

    Its records either hold a raw ``output`` per evaluation line (matched by position), or the
    ``results`` that `knowlm extract` writes (matched by ``id``).
    """
    records = list(read_jsonl(path))
    if records and all(isinstance(r.get("output"), str) for _, r in records):
        if len(records) != len(lines):
            raise InputError(
                f"{path}: {len(records)} predictions for {len(lines)} evaluation lines; they must match"
            )
        return documents_from_lines(
            lines,
            {
                line.number: _answer(r, f"{path} line {n}")
                for line, (n, r) in zip(lines, records, strict=True)
            },
        )
    docs = {doc.id: doc for doc in documents_from_lines(lines, {})}
    for number, record in records:
        if not isinstance(record.get("results"), list):
            raise InputError(
                f"{path} line {number}: needs 'output' (raw answer) or 'results' (knowlm extract)"
            )
        key = str(record.get("id", ""))
        if key not in docs:
            raise InputError(f"{path} line {number}: id {key!r} is not in the evaluation file")
        docs[key].pred = [canonical(item_from_dict(r), docs[key].names) for r in record["results"]]
        docs[key].outputs += 1
        docs[key].parse_failures += 0 if record.get("parse", {}).get("ok", True) else 1
    return list(docs.values())


def first_documents(lines: list[EvalLine], limit: int | None) -> list[EvalLine]:
    """The lines of the first ``limit`` documents (all when None)."""
    if limit is None:
        return lines
    if limit < 1:
        raise InputError("--limit must be at least 1")
    keep = set(list(dict.fromkeys(line.id for line in lines))[:limit])
    return [line for line in lines if line.id in keep]


def single_task(lines: list[EvalLine]) -> str:
    """The one task of an evaluation file (files mixing tasks are scored one task at a time)."""
    tasks = {line.task for line in lines}
    if len(tasks) > 1:
        raise InputError(
            f"the file mixes tasks ({', '.join(sorted(tasks))}); score one task at a time with --task"
        )
    return tasks.pop()


Shots = Callable[[EvalLine], list[tuple[str, str]]]


def generate_answers(
    engine: Engine,
    lines: list[EvalLine],
    params: SamplingParams,
    template: PromptTemplate,
    *,
    constrained: bool = True,
    grounded: bool = True,
    shots: Shots | None = None,
    batch_size: int = 8,
    output: Path | None = None,
    progress: bool = True,
) -> dict[int, Answer]:
    """The model's answer to every line's instruction, by line number. ``constrained`` decodes each line
    under its schema batch's JSON shape (``grounded``: every string a piece of the line's input);
    ``shots`` gives worked examples per line; with ``output`` answers are saved as they come and an
    interrupted run resumes from them."""

    from knowlm.engines.base import generate_each
    from knowlm.ie.grammar import answer_params

    def line_params(line: EvalLine) -> SamplingParams:
        """Each line has its own schema batch and input, so its own constraint."""
        if not constrained:
            return params
        shape = get_task(line.task).answer_json_schema(line.schema)
        return answer_params(params, shape, json.loads(line.instruction)["input"], grounded=grounded)

    def prompt(line: EvalLine) -> str:
        return template.format(line.instruction, shots=shots(line) if shots else ())

    def answer(chunk: Sequence[EvalLine]) -> list[dict[str, Any]]:
        done = generate_each(engine, [prompt(line) for line in chunk], [line_params(line) for line in chunk])
        return [
            {"id": line.id, "output": c.text, **({"logprobs": c.logprobs} if c.logprobs is not None else {})}
            for line, c in zip(chunk, done, strict=True)
        ]

    results = run_resumable(
        lines, answer, step=records_per_call(batch_size), output=output, unit="line", progress=progress
    )
    return {line.number: _answer(r) for line, r in zip(lines, results, strict=True)}


def _answer(record: dict[str, Any], where: str = "answer") -> Answer:
    """An answer record (``output``, and ``logprobs`` as [text, log-probability] pairs when saved)."""
    logprobs = record.get("logprobs")
    try:
        pairs = [(str(t), float(p)) for t, p in logprobs] if logprobs else None
    except (TypeError, ValueError):
        raise InputError(f"{where}: 'logprobs' must be a list of [text, log-probability] pairs") from None
    return Answer(record["output"], pairs)


def evaluate_model(
    engine: Engine,
    lines: list[EvalLine],
    params: SamplingParams,
    *,
    template: str = "auto",
    constrained: bool = True,
    grounded: bool = True,
    shots: Shots | None = None,
    batch_size: int = 8,
    output: Path | None = None,
    progress: bool = True,
    min_confidence: float = 0.0,
) -> dict[str, Any]:
    """`knowlm eval --data`'s pipeline, also run by `knowlm finetune --eval-ie`: the model's answers to
    ``lines`` (see `generate_answers`; constrained by default, as `knowlm extract` decodes) read and
    scored (see `score`), keeping the items of confidence at least ``min_confidence``."""
    from knowlm.engines.base import chat_renderer
    from knowlm.prompts import get_template

    answers = generate_answers(
        engine,
        lines,
        params,
        get_template(template, chat_renderer(engine)),
        constrained=constrained,
        grounded=grounded,
        shots=shots,
        batch_size=batch_size,
        output=output,
        progress=progress,
    )
    report = score(single_task(lines), keep_confident(documents_from_lines(lines, answers), min_confidence))
    return {**report, "constrained": constrained}


def few_shot_examples(path: Path, n: int) -> Shots:
    """A function giving, for an evaluation line, the first ``n`` records of ``path`` with its task and
    language, as (instruction, answer) pairs."""
    from knowlm.ie.formats import detect_language

    pool: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        if not isinstance(record.get("output"), str) or "instruction" not in record:
            raise InputError(f"{where}: a few-shot example needs 'instruction' and 'output'")
        body = parse_oneke_instruction(record["instruction"], where)
        key = (str(record.get("task", "")).lower(), detect_language(body["input"]))
        pool.setdefault(key, []).append((record["instruction"], record["output"]))

    def pick(line: EvalLine) -> list[tuple[str, str]]:
        lang = detect_language(json.loads(line.instruction)["input"])
        found = pool.get((line.task, lang), [])
        if not found:
            raise InputError(f"{path}: no {line.task} examples in {'Chinese' if lang == 'zh' else 'English'}")
        return [(q, a) for q, a in found if q != line.instruction][:n]

    return pick

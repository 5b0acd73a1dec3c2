"""Schema-aware IE training examples (IEPile style): from a text and its gold items, make OneKE
instruction records whose schemas mix the types present with sampled negative types (answered with empty
values), shuffled and split into batches, so a tuned model learns to say "none" instead of inventing."""

from __future__ import annotations

import json
import random
from typing import Any

from knowlm.ie.formats import get_format
from knowlm.ie.results import Item
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.tasks import get_task


def item_type(item: Item, task: str) -> str:
    """The schema item an extracted item belongs to (its type, relation, event type; a KG head's type)."""
    return get_task(task).item_type(item)


def make_records(
    text: str,
    items: list[Item],
    schema: Schema,
    *,
    lang: str,
    rng: random.Random,
    negatives: int = 2,
    batch_size: int | None = None,
    source: str = "",
    full_schema: bool = False,
    keep_empty: float = 1.0,
) -> list[dict[str, Any]]:
    """OneKE training records (``instruction`` JSON string, ``output`` JSON string) for one text.

    The schema of each record holds every type present in the gold items plus up to ``negatives`` types
    from ``schema`` that are absent, in random order, split into batches of ``batch_size`` items.
    ``full_schema`` asks for every schema item in its given order instead (evaluation records).
    A batch whose answer is all empty is kept with probability ``keep_empty`` (training records only):
    with many negatives, whole batches of absent types teach the model the evaluation-time situation
    of a schema with nothing to find, and this sets how often it is shown.
    """
    task = get_task(schema.task)
    present = list(dict.fromkeys(item_type(i, task.name) for i in items))
    known = {s.name: s for s in schema.items}
    positive = [known.get(name) or SchemaItem(name) for name in present]
    absent = [s for s in schema.items if s.name not in present]
    if full_schema:
        chosen = list(schema.items) + [p for p in positive if p.name not in known]
    else:
        chosen = positive + rng.sample(absent, min(negatives, len(absent)))
        rng.shuffle(chosen)
    fmt = get_format("oneke", task.name)
    size = batch_size or task.batch_size
    records = []
    for batch in Schema(task.name, tuple(chosen)).batches(size):
        instruction = fmt.build(task, batch, text, lang).instruction
        found = [i for i in items if item_type(i, task.name) in batch.names]
        if not found and not full_schema and keep_empty < 1.0 and rng.random() >= keep_empty:
            continue
        answer = task.to_answer(found, batch)
        records.append(
            {
                "task": task.name.upper(),
                "source": source,
                "instruction": instruction,
                "output": json.dumps(answer, ensure_ascii=False),
            }
        )
    return records

"""KG2Instruction: distant supervision from a knowledge graph.

Sentences of a corpus in which a triple's subject and object both occur (by name or alias) are labelled
with that triple; each such sentence becomes RE / NER / SPO instruction records in the OneKE format, with
negative schema items sampled from the graph's other relations and types. Deterministic given a seed.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.ie.augment import make_records
from knowlm.ie.formats import detect_language
from knowlm.ie.results import Entity, Item, Triple
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.split import split_sentences


@dataclass(frozen=True)
class KGTriple:
    head: str
    relation: str
    tail: str
    head_type: str | None = None
    tail_type: str | None = None


@dataclass
class Stats:
    triples: int = 0
    entities: int = 0
    sentences: int = 0
    too_long: int = 0
    matched_sentences: int = 0
    matched_triples: Counter[str] = field(default_factory=Counter)
    """Matches per relation."""
    dropped_relations: list[str] = field(default_factory=list)
    """Relations below --min-support."""
    records: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["matched_triples"] = dict(self.matched_triples.most_common())
        return out


def read_triples(path: str | Path) -> list[KGTriple]:
    """Triples from TSV/CSV (head, relation, tail[, head_type, tail_type]; a header row is skipped) or
    JSONL ({"head", "relation", "tail", "head_type"?, "tail_type"?})."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--kg {path}: no such file")
    triples = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
            if not all(isinstance(r.get(k), str) and r[k].strip() for k in ("head", "relation", "tail")):
                raise InputError(f"{path} line {number}: needs non-empty 'head', 'relation' and 'tail'")
            triples.append(
                KGTriple(
                    r["head"].strip(),
                    r["relation"].strip(),
                    r["tail"].strip(),
                    r.get("head_type"),
                    r.get("tail_type"),
                )
            )
        return triples
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    with path.open(encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter=delimiter), 1):
            if not row or not any(c.strip() for c in row):
                continue
            if number == 1 and [c.strip().lower() for c in row[:3]] == ["head", "relation", "tail"]:
                continue
            if len(row) < 3 or not all(c.strip() for c in row[:3]):
                raise InputError(f"{path} line {number}: expected head, relation, tail (and optional types)")
            types = [c.strip() or None for c in row[3:5]] + [None, None]
            triples.append(KGTriple(row[0].strip(), row[1].strip(), row[2].strip(), types[0], types[1]))
    return triples


def read_aliases(path: str | Path) -> dict[str, list[str]]:
    """Aliases: TSV lines ``entity<TAB>alias1|alias2`` or JSONL ``{"entity", "aliases": [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--aliases {path}: no such file")
    aliases: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix.lower() in (".jsonl", ".json"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
            entity, names = r.get("entity"), r.get("aliases")
        else:
            entity, _, rest = line.partition("\t")
            names = [a for a in rest.split("|")]
        if not isinstance(entity, str) or not entity.strip() or not isinstance(names, list):
            raise InputError(f"{path} line {number}: expected an entity and a list of aliases")
        aliases[entity.strip()] += [a.strip() for a in names if isinstance(a, str) and a.strip()]
    return dict(aliases)


class _Matcher:
    """Finds entity surface forms (names and aliases) in a sentence, longest first, without overlaps.

    Latin-script names only match as whole words; Chinese names match anywhere.
    """

    def __init__(self, forms: dict[str, str]) -> None:
        self.forms = forms  # surface form -> canonical entity
        parts = []
        for form in sorted(forms, key=len, reverse=True):
            escaped = re.escape(form)
            parts.append(rf"(?<![\w]){escaped}(?![\w])" if re.search(r"[A-Za-z0-9]", form) else escaped)
        self.pattern = re.compile("|".join(parts)) if parts else None

    def entities(self, sentence: str) -> dict[str, str]:
        """Canonical entity -> the surface form the sentence uses (its first mention)."""
        found: dict[str, str] = {}
        if self.pattern is not None:
            for m in self.pattern.finditer(sentence):
                found.setdefault(self.forms[m.group(0)], m.group(0))
        return found


def read_corpus(paths: list[str | Path]) -> Iterator[str]:
    """Documents: one a line, from each file."""
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"--corpus {path}: no such file")
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield line.strip()


def kg2instruct(
    triples: list[KGTriple],
    corpus: Iterator[str],
    *,
    aliases: dict[str, list[str]] | None = None,
    tasks: tuple[str, ...] = ("re",),
    relations: set[str] | None = None,
    max_sentence_len: int = 300,
    min_support: int = 1,
    negatives: int = 2,
    schema_batch_size: int | None = None,
    lang: str = "auto",
    seed: int = 42,
) -> tuple[list[dict[str, Any]], Stats]:
    """Instruction records (OneKE format) and statistics of what matched."""
    bad = [t for t in tasks if t not in KG_TASKS]
    if bad:
        raise InputError(f"--tasks: {', '.join(bad)} not supported; kg2instruct makes {', '.join(KG_TASKS)}")
    stats = Stats(triples=len(triples))
    if relations:
        triples = [t for t in triples if t.relation in relations]
    by_pair: dict[tuple[str, str], list[KGTriple]] = defaultdict(list)
    for t in triples:
        by_pair[(t.head, t.tail)].append(t)
    entities = {e for t in triples for e in (t.head, t.tail)}
    stats.entities = len(entities)
    forms: dict[str, str] = {e: e for e in entities}
    for entity, names in (aliases or {}).items():
        if entity in entities:
            for name in names:
                forms.setdefault(name, entity)
    matcher = _Matcher(forms)
    types: dict[str, str | None] = {}
    for t in triples:
        types.setdefault(t.head, t.head_type)
        types.setdefault(t.tail, t.tail_type)

    matches: list[tuple[str, list[KGTriple], dict[str, str]]] = []
    for document in corpus:
        for start, end in split_sentences(document):
            sentence = document[start:end].strip()
            if not sentence:
                continue
            stats.sentences += 1
            if len(sentence) > max_sentence_len:
                stats.too_long += 1
                continue
            found = matcher.entities(sentence)
            hits = [t for h in found for tl in found if h != tl for t in by_pair.get((h, tl), [])]
            if hits:
                matches.append((sentence, hits, found))
    support = Counter(t.relation for _, hits, _ in matches for t in hits)
    stats.dropped_relations = sorted(r for r, n in support.items() if n < min_support)
    keep = {r for r, n in support.items() if n >= min_support}
    rng = random.Random(seed)
    kg = KGSchema(
        relations=sorted({t.relation for t in triples} & keep) or sorted(keep),
        types=sorted({x for x in types.values() if x}),
        predicates=sorted(
            {(t.head_type, t.relation, t.tail_type) for t in triples if t.head_type and t.tail_type},
            key=lambda x: (x[1], x[0] or "", x[2] or ""),
        ),
    )
    records: list[dict[str, Any]] = []
    for sentence, hits, surface in matches:
        # answers use the words of the sentence (an alias where the sentence uses one), so they are grounded
        hits = [
            KGTriple(surface[t.head], t.relation, surface[t.tail], t.head_type, t.tail_type)
            for t in dict.fromkeys(hits)
            if t.relation in keep
        ]
        if not hits:
            continue
        stats.matched_sentences += 1
        stats.matched_triples.update(t.relation for t in hits)
        sentence_lang = detect_language(sentence) if lang == "auto" else lang
        for task in tasks:
            items, schema = KG_TASKS[task](hits, kg)
            if not items:
                continue
            records += make_records(
                sentence,
                items,
                schema,
                lang=sentence_lang,
                rng=rng,
                negatives=negatives,
                batch_size=schema_batch_size,
                source="kg2instruct",
            )
    stats.records = len(records)
    return records, stats


@dataclass(frozen=True)
class KGSchema:
    """What a task's records may ask for: the graph's relations (with enough support), entity types and typed
    (head type, relation, tail type) predicates."""

    relations: list[str]
    types: list[str]
    predicates: list[tuple[str | None, str, str | None]]


ItemMaker = Callable[[list[KGTriple], KGSchema], tuple[list[Item], Schema]]
"""The items a sentence's matched triples give one task, and the schema its records ask from."""


def _relation_items(hits: list[KGTriple], kg: KGSchema) -> tuple[list[Item], Schema]:
    items: list[Item] = [Triple(t.head, t.relation, t.tail) for t in hits]
    return items, Schema("re", tuple(SchemaItem(r) for r in kg.relations))


def _entity_items(hits: list[KGTriple], kg: KGSchema) -> tuple[list[Item], Schema]:
    typed = {(e, ty) for t in hits for e, ty in ((t.head, t.head_type), (t.tail, t.tail_type)) if ty}
    items: list[Item] = [Entity(ty, e) for e, ty in sorted(typed)]
    return items, Schema("ner", tuple(SchemaItem(ty) for ty in kg.types))


def _typed_triple_items(hits: list[KGTriple], kg: KGSchema) -> tuple[list[Item], Schema]:
    items: list[Item] = [
        Triple(t.head, t.relation, t.tail, t.head_type, t.tail_type)
        for t in hits
        if t.head_type and t.tail_type
    ]
    schema_items = (SchemaItem(r, head_type=h, tail_type=tl) for h, r, tl in kg.predicates)
    # one SPO item per predicate name (the answer is keyed by predicate)
    return items, Schema("spo", tuple({item.name: item for item in schema_items}.values()))


KG_TASKS: dict[str, ItemMaker] = {}


def register_kg_task(name: str, make_items: ItemMaker) -> None:
    """Let `kg2instruct` (and `knowlm kg2instruct --tasks`) make records of task ``name``."""
    KG_TASKS[name] = make_items


register_kg_task("re", _relation_items)
register_kg_task("ner", _entity_items)
register_kg_task("spo", _typed_triple_items)

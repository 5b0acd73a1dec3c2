"""Public IE datasets -> OneKE instruction records for training and evaluation.

Readers turn CLUENER (Chinese NER, JSON lines with inclusive character offsets) and CoNLL-2003 (English
NER, IOB column files) into ``(id, text, entities)`` documents; `to_records` makes OneKE records of them:
``train`` mode samples schemas with negative types as IEPile does, ``eval`` mode asks for the whole schema
in a fixed order (one ``id`` per document, so `knowlm eval` merges its batches). OneKE/InstructKGC files
are already records and pass through unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.ie.augment import make_records
from knowlm.ie.formats import parse_oneke_instruction
from knowlm.ie.results import Entity
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.io import read_jsonl

# CLUENER's labels (with the data's own spelling "goverment") -> Chinese entity types for Chinese prompts
CLUENER_TYPES = {
    "name": "人物",
    "address": "地址",
    "company": "公司",
    "government": "政府机构",
    "goverment": "政府机构",
    "organization": "组织机构",
    "position": "职位",
    "scene": "景点",
    "book": "书名",
    "game": "游戏",
    "movie": "电影",
}
CONLL_TYPES = {"PER": "person", "ORG": "organization", "LOC": "location", "MISC": "miscellaneous"}
FORMATS = ("cluener", "conll2003", "oneke")


@dataclass
class Document:
    id: str
    text: str
    entities: list[Entity]
    lang: str


@dataclass
class Stats:
    documents: int = 0
    entities: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def count(self, doc: Document) -> None:
        self.documents += 1
        self.entities += len(doc.entities)
        for entity in doc.entities:
            self.by_type[entity.type] = self.by_type.get(entity.type, 0) + 1


def read_cluener(path: str | Path) -> Iterator[Document]:
    """CLUENER records ``{"text", "label": {type: {mention: [[start, end_inclusive], ...]}}}``.

    Every offset is checked against the text; a mismatch is an error naming the line."""
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        text, label = record.get("text"), record.get("label", {})
        if not isinstance(text, str) or not isinstance(label, dict):
            raise InputError(f"{where}: expected 'text' (string) and 'label' (object)")
        entities = []
        for kind, mentions in label.items():
            if kind not in CLUENER_TYPES:
                raise InputError(
                    f"{where}: unknown CLUENER type {kind!r} (known: {', '.join(CLUENER_TYPES)})"
                )
            for mention, spans in mentions.items():
                pairs = []
                for start, end in spans:
                    if text[start : end + 1] != mention:
                        raise InputError(
                            f"{where}: {kind} {mention!r} at [{start}, {end}] reads {text[start : end + 1]!r}"
                        )
                    pairs.append((start, end + 1))
                entities.append(Entity(CLUENER_TYPES[kind], mention, pairs))
        entities.sort(key=lambda e: e.spans[0])
        yield Document(f"cluener-{number}", text, entities, "zh")


def read_conll(path: str | Path) -> Iterator[Document]:
    """CoNLL-2003 column files (``token ... tag``; blank lines end sentences; IOB1 or IOB2 tags).

    A sentence becomes a document; tokens are joined by single spaces and entity offsets follow that."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    tokens: list[tuple[str, str, int]] = []

    def flush() -> Document | None:
        if not tokens:
            return None
        text = " ".join(t for t, _, _ in tokens)
        entities: list[Entity] = []
        offset, current = 0, None  # current: the type of the entity the previous token belongs to
        for token, tag, _ in tokens:
            start, end = offset, offset + len(token)
            offset = end + 1
            prefix, _, kind = tag.partition("-")
            if tag == "O":
                current = None
            elif prefix == "B" or current != kind:
                current = kind
                entities.append(Entity(CONLL_TYPES[kind], "", [(start, end)]))
            else:  # I- continuing the current entity
                entities[-1].spans = [(entities[-1].spans[0][0], end)]
        for entity in entities:
            s, e = entity.spans[0]
            entity.text = text[s:e]
        return Document(f"conll-{tokens[0][2]}", text, entities, "en")

    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if (doc := flush()) is not None:
                    yield doc
                tokens = []
                continue
            tag = parts[-1]
            prefix, _, kind = tag.partition("-")
            if len(parts) < 2 or not (tag == "O" or (prefix in ("B", "I") and kind in CONLL_TYPES)):
                raise InputError(
                    f"{path} line {number}: expected 'token ... TAG' with TAG O or B-/I-{{{','.join(CONLL_TYPES)}}}, "
                    f"got {line.strip()!r}"
                )
            tokens.append((parts[0], tag, number))
    if (doc := flush()) is not None:
        yield doc


def read_documents(fmt: str, path: str | Path) -> Iterator[Document]:
    if fmt == "cluener":
        return read_cluener(path)
    if fmt == "conll2003":
        return read_conll(path)
    raise InputError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")


def dataset_schema(fmt: str) -> Schema:
    names = CLUENER_TYPES.values() if fmt == "cluener" else CONLL_TYPES.values()
    return Schema("ner", tuple(SchemaItem(n) for n in dict.fromkeys(names)))


def to_records(
    doc: Document, schema: Schema, *, mode: str, rng: random.Random, negatives: int, source: str
) -> list[dict[str, Any]]:
    """OneKE records for one document: sampled schema with negatives (train) or the whole schema (eval)."""
    records = make_records(
        doc.text,
        list(doc.entities),
        schema,
        lang=doc.lang,
        rng=rng,
        negatives=negatives,
        source=source,
        full_schema=mode == "eval",
    )
    return [{"id": doc.id, **r} for r in records]


def convert(
    fmt: str,
    path: str | Path,
    *,
    mode: str = "train",
    negatives: int = 2,
    seed: int = 0,
    limit: int | None = None,
    holdout: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Stats]:
    """Records of a dataset file: (main records, held-out evaluation records, statistics).

    ``holdout`` documents, chosen by ``seed``, become evaluation records (a dev split of a set that has
    none); ``limit`` then samples that many of the remaining documents, also by ``seed``."""
    if mode not in ("train", "eval"):
        raise InputError(f"mode must be train or eval, got {mode!r}")
    rng = random.Random(seed)
    if fmt == "oneke":
        records = _oneke_records(path)
        rest, held = _split(len(records), holdout, limit, rng)
        return [records[i] for i in rest], [records[i] for i in held], Stats()
    docs = list(read_documents(fmt, path))
    if not docs:
        raise InputError(f"{path}: no documents")
    rest, held = _split(len(docs), holdout, limit, rng)
    schema = dataset_schema(fmt)
    stats = Stats()
    main: list[dict[str, Any]] = []
    for i in rest:
        stats.count(docs[i])
        main += to_records(docs[i], schema, mode=mode, rng=rng, negatives=negatives, source=fmt)
    dev: list[dict[str, Any]] = []
    for i in held:
        dev += to_records(docs[i], schema, mode="eval", rng=rng, negatives=negatives, source=fmt)
    return main, dev, stats


def _split(n: int, holdout: int, limit: int | None, rng: random.Random) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices of ``n`` items, each in file order: ``holdout`` items drawn first, then
    ``limit`` of the rest."""
    order = list(range(n))
    rng.shuffle(order)
    rest = sorted(order[holdout:])
    if limit is not None and limit < len(rest):
        rest = sorted(rng.sample(rest, limit))
    return rest, sorted(order[:holdout])


def _oneke_records(path: str | Path) -> list[dict[str, Any]]:
    records = []
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        if "instruction" not in record or not isinstance(record.get("output", record.get("label")), str):
            raise InputError(f"{where}: a OneKE record needs 'instruction' and 'output' (or 'label')")
        parse_oneke_instruction(record["instruction"], where)
        records.append({"id": record.get("id", f"{Path(path).parent.name}-{number}"), **record})
    if not records:
        raise InputError(f"{path}: no records")
    return records

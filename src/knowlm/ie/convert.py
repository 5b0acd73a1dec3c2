"""Public IE datasets -> OneKE instruction records for training and evaluation.

Readers turn CLUENER (Chinese NER, JSON lines with inclusive character offsets), CoNLL-2003 (English NER,
IOB column files), SpERT-style token JSON (CoNLL04 and any dataset in that form: entities and relations by
token offsets), FinRE (Chinese relations, TSV pairs in both directions) and DuIE-style JSON lines
(``text`` + ``spo_list``) into ``(id, text, items)`` documents; `to_records` makes OneKE records of them:
``train`` mode samples schemas with negative types as IEPile does, ``eval`` mode asks for the whole schema
in a fixed order (one ``id`` per document, so `knowlm eval` merges its batches). OneKE/InstructKGC files
are already records and pass through unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.config import IE_DATASET_FORMATS
from knowlm.errors import InputError
from knowlm.ie.augment import item_type, make_records
from knowlm.ie.formats import detect_language, parse_oneke_instruction
from knowlm.ie.results import Entity, Event, Item, Spans, Triple
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.io import read_jsonl, read_lines

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
# CoNLL04's relation labels -> relation names a model can read
CONLL04_RELATIONS = {
    "Work_For": "work for",
    "Kill": "kill",
    "OrgBased_In": "organization based in",
    "Live_In": "live in",
    "Located_In": "located in",
}
CONLL04_TYPES = {"Peop": "person", "Org": "organization", "Loc": "location", "Other": "other"}
# FinRE: `自己` pairs an entity with another name of it (上海建工 / 建工集团). Kept, as the relation 别名
# ("alias"): a knowledge graph needs exactly this to merge the two names, and the pair is stated by the text.
FINRE_ALIAS = "别名"
FORMATS = IE_DATASET_FORMATS


@dataclass
class Document:
    id: str
    text: str
    items: Sequence[Item]
    lang: str
    task: str = "ner"


@dataclass
class Stats:
    documents: int = 0
    items: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    """Gold items the converter could not keep, by reason (e.g. a FinRE name not found in its sentence)."""

    def count(self, doc: Document) -> None:
        self.documents += 1
        self.items += len(doc.items)
        for item in doc.items:
            name = item_type(item, doc.task)
            self.by_type[name] = self.by_type.get(name, 0) + 1

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def read_cluener(path: str | Path) -> Iterator[Document]:
    """CLUENER records ``{"text", "label": {type: {mention: [[start, end_inclusive], ...]}}}``.

    Every offset is checked against the text; a mismatch is an error naming the line."""
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        text, label = record.get("text"), record.get("label", {})
        if not isinstance(text, str) or not isinstance(label, dict):
            raise InputError(f"{where}: expected 'text' (string) and 'label' (object)")
        entities: list[Entity] = []
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


# tokens written without a space before them / after them when --detokenize joins a sentence
_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", "%", ")", "]", "}", "'s", "'S", "n't", "'re", "'ve", "'ll",
                    "'d", "'m", "''", "..."}  # fmt: skip
_NO_SPACE_AFTER = {"(", "[", "{", "$", "``", "#"}


def join_tokens(tokens: list[str], detokenize: bool = False) -> tuple[str, list[int]]:
    """(text, start offset of each token). Tokens are joined by single spaces; ``detokenize`` writes them
    as running text instead (no space before punctuation and clitics, none inside brackets and straight
    double quotes), so that a model trained on the result reads ordinary text ("in Dallas.", not
    "in Dallas .")."""
    parts: list[str] = []
    starts: list[int] = []
    offset, glue, quotes = 0, True, 0
    for token in tokens:
        attach = glue or (detokenize and token in _NO_SPACE_BEFORE)
        if detokenize and token == '"':
            attach = glue or quotes % 2 == 1  # a closing quote attaches to the word before it
        if not attach:
            parts.append(" ")
            offset += 1
        starts.append(offset)
        parts.append(token)
        offset += len(token)
        glue = detokenize and (token in _NO_SPACE_AFTER or (token == '"' and quotes % 2 == 0))
        quotes += token == '"'
    return "".join(parts), starts


def read_conll(path: str | Path, detokenize: bool = False) -> Iterator[Document]:
    """CoNLL-2003 column files (``token ... tag``; blank lines end sentences; IOB1 or IOB2 tags).

    A sentence becomes a document; tokens are joined as `join_tokens` does and entity offsets follow."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    tokens: list[tuple[str, str, int]] = []

    def flush() -> Document | None:
        if not tokens:
            return None
        text, starts = join_tokens([t for t, _, _ in tokens], detokenize)
        entities: list[Entity] = []
        current = None  # the type of the entity the previous token belongs to
        for (token, tag, _), start in zip(tokens, starts, strict=True):
            end = start + len(token)
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


def read_spert(
    path: str | Path,
    relations: dict[str, str] | None = None,
    types: dict[str, str] | None = None,
    prefix: str = "spert",
    detokenize: bool = False,
) -> Iterator[Document]:
    """SpERT-style JSON (a JSON array, or JSON lines) of ``{"tokens", "entities": [{"type", "start", "end"}],
    "relations": [{"type", "head", "tail"}]}``: token offsets with an exclusive end; ``head``/``tail`` index
    ``entities``. Tokens are joined as `join_tokens` does; a document's items are its relation triples.

    ``relations``/``types`` rename labels (CoNLL04's ``Work_For`` -> ``work for``); others stay as given."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
        records = list(enumerate(data if isinstance(data, list) else [data], 1))
        where_of = "record"
    except json.JSONDecodeError:
        records, where_of = list(read_jsonl(path)), "line"
    for number, record in records:
        where = f"{path} {where_of} {number}"
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise InputError(f"{where}: expected 'tokens' (a list of strings)")
        text, starts = join_tokens(tokens, detokenize)
        spans: list[tuple[str, int, int]] = []
        for e in record.get("entities", []):
            try:
                start, end, kind = int(e["start"]), int(e["end"]), str(e["type"])
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{where}: an entity needs 'type', 'start' and 'end', got {e!r}") from None
            if not 0 <= start < end <= len(tokens):
                raise InputError(f"{where}: entity token span [{start}, {end}) outside {len(tokens)} tokens")
            begin, finish = starts[start], starts[end - 1] + len(tokens[end - 1])
            spans.append(((types or {}).get(kind, kind), begin, finish))
        triples: list[Item] = []
        for r in record.get("relations", []):
            try:
                head, tail, label = spans[int(r["head"])], spans[int(r["tail"])], str(r["type"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise InputError(
                    f"{where}: a relation needs 'type' and 'head'/'tail' indices into its "
                    f"{len(spans)} entities, got {r!r}"
                ) from None
            triples.append(
                Triple(
                    text[head[1] : head[2]],
                    (relations or {}).get(label, label),
                    text[tail[1] : tail[2]],
                    head[0],
                    tail[0],
                    [(head[1], head[2])],
                    [(tail[1], tail[2])],
                )
            )
        triples = sorted(_unique(triples), key=lambda t: t.head_spans[0])  # type: ignore[union-attr]
        doc_id = record.get("orig_id", number)
        yield Document(f"{prefix}-{doc_id}", text, triples, detect_language(text), "re")


def _unique(items: list[Item]) -> list[Item]:
    """The items without repeats (same key), each where it first occurs."""
    first: dict[tuple[str, ...], Item] = {}
    for item in items:
        first.setdefault(item.key(), item)
    return list(first.values())


def _located(
    text: str, head: str, relation: str, tail: str, types: tuple[str | None, str | None] = (None, None)
) -> Triple | None:
    """A triple with its first head and tail offsets in ``text``; None when a name is not in the text."""
    h, t = text.find(head), text.find(tail)
    if h < 0 or t < 0:
        return None
    return Triple(head, relation, tail, types[0], types[1], [(h, h + len(head))], [(t, t + len(tail))])


def _finre_rows(path: Path) -> Iterator[tuple[int, str, str, str, str]]:
    for number, line in read_lines(path):
        parts = line.split("\t")
        if len(parts) != 4 or not all(p.strip() for p in parts[:3]):
            raise InputError(f"{path} line {number}: expected 'head<TAB>tail<TAB>relation<TAB>sentence'")
        yield number, parts[0].strip(), parts[1].strip(), parts[2].strip(), parts[3]


def read_finre(path: str | Path, stats: Stats | None = None) -> Iterator[Document]:
    """FinRE TSV (``head, tail, relation, sentence``; every pair in both directions).

    Pairs are grouped by sentence into one document. Each inverse pair is kept once, in its active form
    (``被持股(A, B)`` is ``持股(B, A)``); a relation without a ``被`` form is symmetric (合作, 合并, ...) and
    keeps the direction in which the names appear in the sentence; ``unknown`` pairs add no triple (the
    sentence still becomes a document, a negative example); ``自己`` becomes the alias relation 别名. A
    name missing from its sentence (some sentences are cut short) drops that triple, counted in ``stats``."""
    path = Path(path)
    rows = list(_finre_rows(path))
    labels = {r[3] for r in rows}
    sentences: dict[str, list[tuple[str, str, str]]] = {}
    first_line: dict[str, int] = {}
    for number, head, tail, relation, sentence in rows:
        first_line.setdefault(sentence, number)
        pairs = sentences.setdefault(sentence, [])
        if relation == "unknown":
            continue
        if relation.startswith("被") and relation[1:] in labels:
            head, tail, relation = tail, head, relation[1:]
        elif relation == "自己":
            relation = FINRE_ALIAS
        symmetric = relation == FINRE_ALIAS or "被" + relation not in labels
        if symmetric and _position(sentence, tail) < _position(sentence, head):
            head, tail = tail, head
        if (head, relation, tail) not in pairs:
            pairs.append((head, relation, tail))
    for sentence, pairs in sentences.items():
        triples: list[Item] = []
        for head, relation, tail in pairs:
            triple = _located(sentence, head, relation, tail)
            if triple is None:
                if stats is not None:
                    stats.skip("name_not_in_sentence")
                continue
            triples.append(triple)
        yield Document(f"finre-{first_line[sentence]}", sentence, triples, "zh", "re")


def _position(text: str, name: str) -> int:
    found = text.find(name)
    return found if found >= 0 else len(text)


def read_duie(path: str | Path, stats: Stats | None = None) -> Iterator[Document]:
    """DuIE-style JSON lines: ``{"text", "spo_list": [{"subject", "predicate", "object"}]}`` where
    ``object`` is a string (DuIE 1.0) or ``{"@value": ...}`` (DuIE 2.0; other keys of a complex object are
    its extra slots and are left out). Types come from ``subject_type``/``object_type`` when given.
    A subject or object not found in the text drops that triple, counted in ``stats``."""
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        text, spos = record.get("text"), record.get("spo_list", [])
        if not isinstance(text, str) or not isinstance(spos, list):
            raise InputError(f"{where}: expected 'text' (string) and 'spo_list' (list)")
        triples: list[Item] = []
        for spo in spos:
            if not isinstance(spo, dict):
                raise InputError(f"{where}: an spo_list entry must be an object, got {spo!r}")
            subject, predicate = spo.get("subject"), spo.get("predicate")
            obj, obj_type = _duie_value(spo.get("object")), _duie_value(spo.get("object_type"))
            if not all(isinstance(v, str) and v for v in (subject, predicate, obj)):
                raise InputError(
                    f"{where}: an spo needs 'subject', 'predicate' and 'object' strings, got {spo!r}"
                )
            assert isinstance(subject, str) and isinstance(predicate, str) and isinstance(obj, str)
            subject_type = spo.get("subject_type") if isinstance(spo.get("subject_type"), str) else None
            triple = _located(text, subject, predicate, obj, (subject_type, obj_type))
            if triple is None:
                if stats is not None:
                    stats.skip("name_not_in_text")
                continue
            triples.append(triple)
        yield Document(
            f"duie-{record.get('id', number)}", text, _unique(triples), detect_language(text), "re"
        )


def _duie_value(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("@value")
    return value if isinstance(value, str) else None


def read_documents(
    fmt: str, path: str | Path, stats: Stats | None = None, detokenize: bool = False
) -> Iterator[Document]:
    if detokenize and fmt not in ("conll2003", "conll04", "spert"):
        raise InputError(f"--detokenize applies to token formats (conll2003, conll04, spert), not {fmt}")
    if fmt == "cluener":
        return read_cluener(path)
    if fmt == "conll2003":
        return read_conll(path, detokenize)
    if fmt == "conll04":
        return read_spert(path, CONLL04_RELATIONS, CONLL04_TYPES, prefix="conll04", detokenize=detokenize)
    if fmt == "spert":
        return read_spert(path, detokenize=detokenize)
    if fmt == "finre":
        return read_finre(path, stats)
    if fmt == "duie":
        return read_duie(path, stats)
    raise InputError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")


def dataset_schema(fmt: str, docs: list[Document]) -> Schema:
    """The schema a dataset's records ask about: its fixed type set, or the names its documents use."""
    if fmt == "cluener":
        return Schema("ner", tuple(SchemaItem(n) for n in dict.fromkeys(CLUENER_TYPES.values())))
    if fmt == "conll2003":
        return Schema("ner", tuple(SchemaItem(n) for n in CONLL_TYPES.values()))
    if fmt == "conll04":
        return Schema("re", tuple(SchemaItem(n) for n in CONLL04_RELATIONS.values()))
    names = sorted({item_type(i, d.task) for d in docs for i in d.items})
    return Schema(docs[0].task if docs else "re", tuple(SchemaItem(n) for n in names))


def to_records(
    doc: Document,
    schema: Schema,
    *,
    mode: str,
    rng: random.Random,
    negatives: int,
    source: str,
    keep_empty: float = 1.0,
) -> list[dict[str, Any]]:
    """OneKE records for one document: sampled schema with negatives (train) or the whole schema (eval)."""
    records = make_records(
        doc.text,
        list(doc.items),
        schema,
        lang=doc.lang,
        rng=rng,
        negatives=negatives,
        source=source,
        full_schema=mode == "eval",
        keep_empty=keep_empty,
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
    detokenize: bool = False,
    keep_empty: float = 1.0,
    rename: dict[str, str] | None = None,
    join: float = 0.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Stats]:
    """Records of a dataset file: (main records, held-out evaluation records, statistics).

    ``holdout`` documents, chosen by ``seed``, become evaluation records (a dev split of a set that has
    none); ``limit`` then samples that many of the remaining documents, also by ``seed``. ``keep_empty``
    is the share of all-empty training batches kept (see :func:`knowlm.ie.augment.make_records`).
    ``rename`` maps type or relation names (as the converter writes them) to the names to use instead;
    ``join`` is the share of training texts joined with another (see :func:`joined`)."""
    if mode not in ("train", "eval"):
        raise InputError(f"mode must be train or eval, got {mode!r}")
    if not 0.0 <= keep_empty <= 1.0:
        raise InputError(f"keep_empty must be between 0 and 1, got {keep_empty}")
    if not 0.0 <= join <= 1.0 or (join and mode != "train"):
        raise InputError(f"join must be between 0 and 1 and only in train mode, got {join} ({mode} mode)")
    rng = random.Random(seed)
    if fmt == "oneke":
        records = _oneke_records(path)
        rest, held = _split(len(records), holdout, limit, rng)
        return [records[i] for i in rest], [records[i] for i in held], Stats()
    stats = Stats()
    docs = list(read_documents(fmt, path, stats, detokenize))
    if not docs:
        raise InputError(f"{path}: no documents")
    rest, held = _split(len(docs), holdout, limit, rng)
    schema = dataset_schema(fmt, docs)
    if rename:
        schema, docs = renamed(schema, docs, rename)
    main: list[dict[str, Any]] = []
    for doc in joined([docs[i] for i in rest], join, rng):
        stats.count(doc)
        main += to_records(
            doc, schema, mode=mode, rng=rng, negatives=negatives, source=fmt, keep_empty=keep_empty
        )
    dev: list[dict[str, Any]] = []
    for i in held:
        dev += to_records(docs[i], schema, mode="eval", rng=rng, negatives=negatives, source=fmt)
    return main, dev, stats


def renamed(schema: Schema, docs: list[Document], rename: dict[str, str]) -> tuple[Schema, list[Document]]:
    """``schema`` and ``docs`` with types, relations and event types renamed by ``rename``; a name that is
    not in the schema is an error (a typo would otherwise rename nothing, silently). Types renamed to one
    name are merged (a coarser schema: ``company=organization,government=organization``), but renaming
    onto a type that keeps its name is an error: merge on purpose, by naming every merged type."""
    names = [i.name for i in schema.items]
    unknown = sorted(set(rename) - set(names))
    if unknown:
        raise InputError(f"--rename: {', '.join(unknown)} not in the dataset's types ({', '.join(names)})")
    kept = set(names) - set(rename)
    clashes = sorted(f"{old}={new}" for old, new in rename.items() if new in kept)
    if clashes:
        raise InputError(
            f"--rename: {', '.join(clashes)} gives a type the name of another that keeps its name; "
            "to merge them, rename that one too (e.g. A=C,B=C)"
        )

    def item(it: Item) -> Item:
        if isinstance(it, Triple):
            return dataclasses.replace(it, relation=rename.get(it.relation, it.relation))
        return dataclasses.replace(it, type=rename.get(it.type, it.type))

    items: dict[str, SchemaItem] = {}
    for it in schema.items:
        name = rename.get(it.name, it.name)
        items.setdefault(name, dataclasses.replace(it, name=name))
    schema = dataclasses.replace(schema, items=tuple(items.values()))
    return schema, [dataclasses.replace(d, items=_merged(map(item, d.items))) for d in docs]


def _merged(items: Iterable[Item]) -> list[Item]:
    """``items`` with each (name, text) once, holding the spans of all its copies (merged types, or joined
    texts, may hold the same mention twice). Events are never merged: two events of one type are two."""
    out: dict[tuple[Any, ...], Item] = {}
    for it in items:
        key = (id(it),) if isinstance(it, Event) else it.key()
        first = out.setdefault(key, it)
        if first is not it:
            out[key] = dataclasses.replace(
                first,
                **{
                    f.name: getattr(first, f.name)
                    + [s for s in getattr(it, f.name) if s not in getattr(first, f.name)]
                    for f in dataclasses.fields(first)
                    if f.name.endswith("spans")
                },
            )
    return list(out.values())


def _shifted(item: Item, offset: int) -> Item:
    """``item`` with every span moved ``offset`` characters to the right."""

    def move(spans: Spans) -> Spans:
        return [(start + offset, end + offset) for start, end in spans]

    if isinstance(item, Entity):
        return dataclasses.replace(item, spans=move(item.spans))
    if isinstance(item, Triple):
        return dataclasses.replace(item, head_spans=move(item.head_spans), tail_spans=move(item.tail_spans))
    arguments = [dataclasses.replace(a, spans=move(a.spans)) for a in item.arguments]
    return dataclasses.replace(item, trigger_spans=move(item.trigger_spans), arguments=arguments)


def joined(docs: list[Document], share: float, rng: random.Random) -> list[Document]:
    """``docs`` with ``share`` of those that hold items replaced by two-text documents: the text followed
    by another text of the same language whose items are of another type or relation, with the items of
    both (offsets shifted). Most sentences of the public sets hold one type of relation, so a model trained
    on them learns to fill at most one relation of a schema batch; joined texts teach it to fill more."""
    if share <= 0:
        return docs
    full = [i for i, d in enumerate(docs) if d.items]
    kinds = {i: (docs[i].lang, frozenset(item_type(it, docs[i].task) for it in docs[i].items)) for i in full}
    candidates: dict[tuple[str, frozenset[str]], list[int]] = {}  # the partners of a text, by its kinds
    out = list(docs)
    for i in rng.sample(full, round(share * len(full))):
        first = docs[i]
        lang, types = kinds[i]
        if (lang, types) not in candidates:  # a text is never its own partner: it adds no new kind
            candidates[lang, types] = [j for j in full if kinds[j][0] == lang and kinds[j][1] - types]
        partners = candidates[lang, types]
        if not partners:
            continue
        second = docs[rng.choice(partners)]
        gap = "" if first.lang == "zh" else " "
        offset = len(first.text) + len(gap)
        out[i] = dataclasses.replace(
            first,
            id=f"{first.id}+{second.id}",
            text=first.text + gap + second.text,
            items=_merged([*first.items, *(_shifted(it, offset) for it in second.items)]),
        )
    return out


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

"""Public IE datasets -> OneKE instruction records for training and evaluation.

Readers turn CLUENER (Chinese NER, JSON lines with inclusive character offsets), CoNLL-2003 (English NER,
IOB column files), SpERT-style token JSON (CoNLL04 and any dataset in that form: entities and relations by
token offsets), FinRE (Chinese relations, TSV pairs in both directions), SanWen (Chinese literary prose,
FinRE's layout, one direction), DocRED / Re-DocRED (English document-level relations, every entity with all
its names), FewRel (one annotated pair a sentence) and DuIE-style JSON lines (``text`` + ``spo_list``) into
``(id, text, items)`` documents, each reader registered as a `DatasetFormat`; `to_records` makes OneKE records of them:
``train`` mode samples schemas with negative types as IEPile does, ``eval`` mode asks for the whole schema
in a fixed order (one ``id`` per document, so `knowlm eval` merges its batches). OneKE/InstructKGC files
are already records and pass through unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.ie.augment import item_type, make_records
from knowlm.ie.formats import detect_language, parse_oneke_instruction, text_first_instruction
from knowlm.ie.results import Entity, Event, Item, Spans, Triple
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.split import chunk_text
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
# SanWen's relation labels -> the Chinese names a Chinese schema uses
SANWEN_RELATIONS = {
    "Located": "位于",
    "Part-Whole": "部分",
    "Family": "亲属",
    "General-Special": "类属",
    "Social": "社会关系",
    "Ownership": "拥有",
    "Use": "使用",
    "Near": "邻近",
    "Create": "创作",
}
SANWEN_SYMMETRIC = {"Family", "Social", "Near"}
DOCRED_TYPES = {
    "PER": "person",
    "ORG": "organization",
    "LOC": "location",
    "TIME": "time",
    "NUM": "number",
    "MISC": "miscellaneous",
}


@dataclass
class Document:
    id: str
    text: str
    items: Sequence[Item]
    lang: str
    task: str = "ner"
    names: dict[str, str] = field(default_factory=dict)
    """Other names of an entity in the text -> the name its items use (DocRED's aliases), so that an
    answer naming an entity by any of its names is scored as that entity."""


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


# abbreviations whose period is their own (Nashville, Tenn.), not only the sentence's full stop
_ABBREVIATIONS = frozenset(
    ("Ala", "Ariz", "Ark", "Calif", "Colo", "Conn", "Del", "Fla", "Ga", "Ill", "Ind", "Kan", "Kans", "Ky",
     "La", "Md", "Mass", "Mich", "Minn", "Miss", "Mo", "Mont", "Neb", "Nev", "Okla", "Ore", "Pa", "Tenn",
     "Tex", "Va", "Vt", "Wash", "Wis", "Wyo", "Jan", "Feb", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
     "Inc", "Corp", "Co", "Ltd", "Jr", "Sr", "Bros", "Dr", "St", "Mt", "Ft", "Gov", "Gen", "Col", "Lt",
     "Sen", "Rep", "Ave", "Blvd")
)  # fmt: skip


def glued_full_stop(token: str) -> bool:
    """Whether a token is a word with a sentence's full stop glued to it ("Boise.", as CoNLL04 tokenizes
    the end of a sentence), rather than an abbreviation with its own period ("Tenn.", "N.M.", "J.")."""
    word = token[:-1]
    return token.endswith(".") and len(word) > 1 and "." not in word and word not in _ABBREVIATIONS


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

    ``relations``/``types`` rename labels (CoNLL04's ``Work_For`` -> ``work for``); others stay as given.
    With ``detokenize``, a name that ends a sentence leaves out the full stop glued to its last word
    (`glued_full_stop`)."""
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
            if detokenize and glued_full_stop(tokens[end - 1]):
                finish -= 1  # in running text a sentence's full stop is not part of the name
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
    yield from _sentence_documents("finre", sentences, first_line, stats)


def _sentence_documents(
    prefix: str,
    sentences: dict[str, list[tuple[str, str, str]]],
    first_line: dict[str, int],
    stats: Stats | None,
) -> Iterator[Document]:
    """A document a sentence with its (head, relation, tail) pairs located in it; a name missing from its
    sentence drops that triple, counted in ``stats``."""
    for sentence, pairs in sentences.items():
        triples: list[Item] = []
        for head, relation, tail in pairs:
            triple = _located(sentence, head, relation, tail)
            if triple is None:
                if stats is not None:
                    stats.skip("name_not_in_sentence")
                continue
            triples.append(triple)
        yield Document(f"{prefix}-{first_line[sentence]}", sentence, triples, "zh", "re")


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


def read_sanwen(path: str | Path, stats: Stats | None = None) -> Iterator[Document]:
    """SanWen TSV (FinRE's layout: ``head, tail, relation, sentence``; each pair in one direction).

    Pairs are grouped by sentence into one document, relations named in Chinese (`SANWEN_RELATIONS`);
    a symmetric relation (亲属, 社会关系, 邻近) keeps the direction in which the names appear in the
    sentence; ``unknown`` pairs add no triple. ``<N>`` (a number in the source) stays in the text."""
    path = Path(path)
    sentences: dict[str, list[tuple[str, str, str]]] = {}
    first_line: dict[str, int] = {}
    for number, head, tail, label, sentence in _finre_rows(path):
        first_line.setdefault(sentence, number)
        pairs = sentences.setdefault(sentence, [])
        if label == "unknown":
            continue
        if label not in SANWEN_RELATIONS:
            raise InputError(
                f"{path} line {number}: unknown SanWen relation {label!r} (known: {', '.join(SANWEN_RELATIONS)})"
            )
        if label in SANWEN_SYMMETRIC and _position(sentence, tail) < _position(sentence, head):
            head, tail = tail, head
        if (head, SANWEN_RELATIONS[label], tail) not in pairs:
            pairs.append((head, SANWEN_RELATIONS[label], tail))
    yield from _sentence_documents("sanwen", sentences, first_line, stats)


def _json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such file ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None


def _labels(path: Path, name: str, what: str) -> dict[str, str]:
    """Relation id -> label from the file ``name`` next to ``path`` (rel_info.json, pid2name.json)."""
    table = _json_file(path.with_name(name), f"{what}: keep it next to {path.name}")
    if not isinstance(table, dict):
        raise InputError(f"{path.with_name(name)}: expected an object of relation id -> label")
    return {str(k): str(v[0] if isinstance(v, list) else v) for k, v in table.items()}


def _token_span(starts: list[int], tokens: list[str], first: int, last: int) -> tuple[int, int]:
    """Character span of tokens ``first..last`` (inclusive)."""
    return starts[first], starts[last] + len(tokens[last])


@dataclass
class DocredEntity:
    """A DocRED entity: the name its items use (its first mention's), its mentions' character spans in the
    document's text and their types (as mapped by ``DOCRED_TYPES``), in text order."""

    name: str
    spans: Spans
    types: list[str | None]


def docred_text(record: Any, where: str) -> tuple[str, list[DocredEntity]]:
    """One DocRED document's running text (sentences detokenized by `join_tokens`, joined by spaces) and its
    entities with every mention located in that text."""
    sents, vertices = record.get("sents"), record.get("vertexSet")
    if not isinstance(sents, list) or not all(isinstance(s, list) and s for s in sents):
        raise InputError(f"{where}: expected 'sents' (a list of token lists)")
    if not isinstance(vertices, list):
        raise InputError(f"{where}: expected 'vertexSet' (a list of entities, each a list of mentions)")
    pieces: list[str] = []
    starts: list[list[int]] = []
    offset = 0
    for sent in sents:
        piece, token_starts = join_tokens([str(t) for t in sent], detokenize=True)
        pieces.append(piece)
        starts.append([offset + s for s in token_starts])
        offset += len(piece) + 1
    text = " ".join(pieces)
    entities: list[DocredEntity] = []
    for index, mentions in enumerate(vertices):
        found: dict[tuple[int, int], str | None] = {}
        for m in mentions if isinstance(mentions, list) else []:
            try:
                sid, (begin, end) = int(m["sent_id"]), (int(m["pos"][0]), int(m["pos"][1]))
                tokens = sents[sid]
            except (KeyError, TypeError, ValueError, IndexError):
                raise InputError(
                    f"{where}: entity {index}: a mention needs 'sent_id' and 'pos', got {m!r}"
                ) from None
            if not 0 <= begin < end <= len(tokens):
                raise InputError(
                    f"{where}: entity {index}: pos {[begin, end]} outside sentence {sid}'s {len(tokens)} tokens"
                )
            kind = str(m.get("type", ""))
            found.setdefault(
                _token_span(starts[sid], tokens, begin, end - 1), DOCRED_TYPES.get(kind, kind or None)
            )
        if not found:
            raise InputError(f"{where}: entity {index} has no mentions")
        ordered = sorted(found)
        entities.append(DocredEntity(text[slice(*ordered[0])], ordered, [found[s] for s in ordered]))
    return text, entities


def read_docred(path: str | Path) -> Iterator[Document]:
    """DocRED / Re-DocRED JSON: an array of ``{"sents": [[token]], "vertexSet": [[{"name", "sent_id", "pos",
    "type"}]], "labels": [{"h", "t", "r"}]}``; relation ids are named by ``rel_info.json`` next to the file.

    Sentences become running text (`docred_text`). An entity's items use the name of its first mention in the
    text and hold the spans of all its mentions; its other names go to ``Document.names``, so an answer that
    uses any of them scores. A file without ``labels`` (a test split) gives documents without items."""
    path = Path(path)
    relations = _labels(path, "rel_info.json", "DocRED's relation labels, {'P17': 'country', ...}")
    data = _json_file(path, "a DocRED-format JSON array")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of documents")
    for number, record in enumerate(data, 1):
        where = f"{path} document {number}"
        text, entities = docred_text(record, where)
        names: dict[str, str] = {}
        for entity in entities:
            for s, e in entity.spans:
                if text[s:e] != entity.name:
                    names.setdefault(text[s:e], entity.name)
        triples: list[Item] = []
        for label in record.get("labels", []):
            try:
                head, tail, relation = entities[int(label["h"])], entities[int(label["t"])], str(label["r"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise InputError(
                    f"{where}: a label needs 'h' and 't' indices into its {len(entities)} entities and 'r', "
                    f"got {label!r}"
                ) from None
            if relation not in relations:
                raise InputError(
                    f"{where}: relation {relation!r} is not in {path.with_name('rel_info.json')}"
                )
            triples.append(
                Triple(
                    head.name,
                    relations[relation],
                    tail.name,
                    head.types[0],
                    tail.types[0],
                    head.spans,
                    tail.spans,
                )
            )
        triples = sorted(_unique(triples), key=lambda t: t.head_spans[0])  # type: ignore[union-attr]
        names = {alias: name for alias, name in names.items() if alias not in {e.name for e in entities}}
        yield Document(f"docred-{number}", text, triples, "en", "re", names)


def read_fewrel(path: str | Path) -> Iterator[Document]:
    """FewRel JSON ``{relation id: [{"tokens", "h": [name, id, [[token index, ...]]], "t": [...]}]}`` with
    relation labels from ``pid2name.json`` next to the file: one document a sentence, holding its one
    annotated triple (the sentence's other pairs are not annotated)."""
    path = Path(path)
    relations = _labels(path, "pid2name.json", "FewRel's relation names, {'P26': ['spouse', ...], ...}")
    data = _json_file(path, "a FewRel-format JSON object")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of relation id -> sentences")
    for pid, instances in data.items():
        if pid not in relations:
            raise InputError(f"{path}: relation {pid!r} is not in {path.with_name('pid2name.json')}")
        for number, record in enumerate(instances, 1):
            where = f"{path} {pid} sentence {number}"
            try:
                tokens = [str(t) for t in record["tokens"]]
                positions = [[list(map(int, p)) for p in record[end][2]] for end in ("h", "t")]
            except (KeyError, TypeError, ValueError, IndexError):
                raise InputError(
                    f"{where}: expected 'tokens' and 'h'/'t' as [name, id, [[index, ...]]]"
                ) from None
            if not all(p and 0 <= min(p) <= max(p) < len(tokens) for ps in positions for p in ps):
                raise InputError(f"{where}: a token index outside its {len(tokens)} tokens")
            text, starts = join_tokens(tokens, detokenize=True)
            head, tail = ([_token_span(starts, tokens, min(p), max(p)) for p in ps] for ps in positions)
            triple = Triple(
                text[slice(*head[0])], relations[pid], text[slice(*tail[0])], None, None, head, tail
            )
            yield Document(f"fewrel-{pid}-{number}", text, [triple], "en", "re")


@dataclass(frozen=True)
class DatasetFormat:
    """A dataset reader `convert` knows by name (`knowlm data convert-ie FORMAT`)."""

    name: str
    read: Callable[[Path, Stats, bool], Iterator[Document]]
    """(path, statistics, detokenize) -> documents."""
    help: str
    schema: Callable[[Path], Schema] | None = None
    """The dataset's schema, from the dataset's path (DocRED's relation labels sit next to it); None: the
    names its documents use."""
    tokens: bool = False
    """Token-based: ``detokenize`` applies."""
    complete: bool = True
    """Every pair of a text that holds no annotated relation is a negative. False (FewRel: one annotated
    pair a sentence) asks each text only for the relations annotated in it."""


_DATASETS: dict[str, DatasetFormat] = {}


def register_dataset(fmt: DatasetFormat) -> None:
    if fmt.name in _DATASETS or fmt.name == "oneke":
        raise ValueError(f"dataset format {fmt.name!r} is already registered")
    _DATASETS[fmt.name] = fmt


def dataset_formats() -> dict[str, str]:
    """Format name -> one line of help, ``oneke`` (records passed through) included."""
    return {
        **{n: f.help for n, f in _DATASETS.items()},
        "oneke": "OneKE / InstructKGC records (passed through)",
    }


def get_dataset(name: str) -> DatasetFormat:
    if name not in _DATASETS:
        raise InputError(f"unknown dataset format {name!r}; choose one of {', '.join(dataset_formats())}")
    return _DATASETS[name]


def _names(names: Iterable[str], task: str = "re") -> Schema:
    return Schema(task, tuple(SchemaItem(n) for n in dict.fromkeys(names)))


register_dataset(
    DatasetFormat(
        "cluener",
        lambda p, s, d: read_cluener(p),
        "CLUENER (Chinese NER)",
        lambda p: _names(CLUENER_TYPES.values(), "ner"),
    )
)
register_dataset(
    DatasetFormat(
        "conll2003",
        lambda p, s, d: read_conll(p, d),
        "CoNLL-2003 column files (English NER)",
        lambda p: _names(CONLL_TYPES.values(), "ner"),
        tokens=True,
    )
)
register_dataset(
    DatasetFormat(
        "conll04",
        lambda p, s, d: read_spert(p, CONLL04_RELATIONS, CONLL04_TYPES, prefix="conll04", detokenize=d),
        "CoNLL04 in SpERT's JSON (English relations)",
        lambda p: _names(CONLL04_RELATIONS.values()),
        tokens=True,
    )
)
register_dataset(
    DatasetFormat("spert", lambda p, s, d: read_spert(p, detokenize=d), "SpERT-style token JSON", tokens=True)
)
register_dataset(DatasetFormat("finre", lambda p, s, d: read_finre(p, s), "FinRE TSV (Chinese relations)"))
register_dataset(
    DatasetFormat(
        "sanwen",
        lambda p, s, d: read_sanwen(p, s),
        "SanWen TSV (Chinese literary relations)",
        lambda p: _names(SANWEN_RELATIONS.values()),
    )
)
register_dataset(
    DatasetFormat(
        "docred",
        lambda p, s, d: read_docred(p),
        "DocRED / Re-DocRED JSON (document-level relations)",
        lambda p: _names(_labels(p, "rel_info.json", "DocRED's relation labels").values()),
    )
)
register_dataset(
    DatasetFormat(
        "fewrel",
        lambda p, s, d: read_fewrel(p),
        "FewRel JSON (one annotated pair a sentence)",
        complete=False,
    )
)
register_dataset(
    DatasetFormat("duie", lambda p, s, d: read_duie(p, s), "DuIE-style JSON lines (text + spo_list)")
)


def read_documents(
    fmt: str, path: str | Path, stats: Stats | None = None, detokenize: bool = False
) -> Iterator[Document]:
    dataset = get_dataset(fmt)
    if detokenize and not dataset.tokens:
        tokens = ", ".join(n for n, f in _DATASETS.items() if f.tokens)
        raise InputError(f"--detokenize applies to token formats ({tokens}), not {fmt}")
    return dataset.read(Path(path), stats if stats is not None else Stats(), detokenize)


def dataset_schema(fmt: str, docs: list[Document], path: str | Path = "") -> Schema:
    """The schema a dataset's records ask about: its own type set, or the names its documents use."""
    own = get_dataset(fmt).schema
    if own is not None:
        return own(Path(path))
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
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """OneKE records for one document: sampled schema with negatives (train) or the whole schema (eval),
    in batches of ``batch_size`` items (default: the task's). Evaluation records carry the document's
    other entity names (``names``) for scoring."""
    records = make_records(
        doc.text,
        list(doc.items),
        schema,
        lang=doc.lang,
        rng=rng,
        negatives=negatives,
        batch_size=batch_size,
        source=source,
        full_schema=mode == "eval",
        keep_empty=keep_empty,
    )
    extra = {"names": doc.names} if mode == "eval" and doc.names else {}
    return [{"id": doc.id, **r, **extra} for r in records]


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
    window: int | None = None,
    exclude: Collection[str] = (),
    only: Collection[str] = (),
    text_first: float = 0.0,
    schema_batch_size: int | None = None,
    descriptions: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Stats]:
    """Records of a dataset file: (main records, held-out evaluation records, statistics).

    ``holdout`` documents, chosen by ``seed``, become evaluation records (a dev split of a set that has
    none); ``limit`` then samples that many of the remaining documents, also by ``seed``. ``keep_empty``
    is the share of all-empty training batches kept (see :func:`knowlm.ie.augment.make_records`).
    ``rename`` maps type or relation names (as the converter writes them) to the names to use instead;
    ``join`` is the share of training texts joined with another (see :func:`joined`); ``window`` cuts
    longer training texts into pieces of at most that many characters (see :func:`windows`).
    ``exclude`` leaves types or relations (as the converter names them) out of every record, schema
    included, and ``only`` keeps just those: convert a set twice with one seed and holdout, once with
    ``exclude`` and once with ``only``, to train without some relation types and measure them unseen.
    ``schema_batch_size`` sets the schema items of a training record (evaluation records keep the
    task's batches, as `knowlm eval` asks). ``descriptions`` (type or relation name, after ``rename`` ->
    what it means) go into the instructions of the records that ask for those items."""
    if mode not in ("train", "eval"):
        raise InputError(f"mode must be train or eval, got {mode!r}")
    if holdout < 0 or negatives < 0 or (limit is not None and limit < 1):
        raise InputError("holdout and negatives must be >= 0, limit >= 1")
    if window is not None and (window < 1 or mode != "train"):
        raise InputError(
            f"window must be at least 1 character and only in train mode, got {window} ({mode} mode)"
        )
    if exclude and only:
        raise InputError("give either the types to exclude or the only types to keep, not both")
    if not 0.0 <= text_first <= 1.0 or (text_first and mode != "train"):
        raise InputError(f"text_first must be between 0 and 1 and only in train mode, got {text_first}")
    if not 0.0 <= keep_empty <= 1.0:
        raise InputError(f"keep_empty must be between 0 and 1, got {keep_empty}")
    if schema_batch_size is not None and (schema_batch_size < 1 or mode != "train"):
        raise InputError(
            f"schema_batch_size must be at least 1 and only in train mode, got {schema_batch_size}"
        )
    if not 0.0 <= join <= 1.0 or (join and mode != "train"):
        raise InputError(f"join must be between 0 and 1 and only in train mode, got {join} ({mode} mode)")
    rng = random.Random(seed)
    if fmt == "oneke":
        if descriptions:
            raise InputError(
                "descriptions do not apply to oneke records, whose instructions are written already"
            )
        records = _oneke_records(path)
        rest, held = _split(len(records), holdout, limit, rng)
        return [records[i] for i in rest], [records[i] for i in held], Stats()
    stats = Stats()
    dataset = get_dataset(fmt)
    docs = list(read_documents(fmt, path, stats, detokenize))
    if not docs:
        raise InputError(f"{path}: no documents")
    rest, held = _split(len(docs), holdout, limit, rng)
    schema = dataset_schema(fmt, docs, path)
    if exclude or only:
        schema, docs = selected(schema, docs, set(exclude), set(only))
    if rename:
        schema, docs = renamed(schema, docs, rename)
    if descriptions:
        schema = described(schema, descriptions)

    def records_of(doc: Document, mode: str) -> list[dict[str, Any]]:
        own = schema if dataset.complete else _names((item_type(i, doc.task) for i in doc.items), schema.task)
        size = schema_batch_size if mode == "train" else None
        return to_records(
            doc,
            own,
            mode=mode,
            rng=rng,
            negatives=negatives,
            source=fmt,
            keep_empty=keep_empty,
            batch_size=size,
        )

    main: list[dict[str, Any]] = []
    for doc in joined([docs[i] for i in rest], join, rng):
        for piece in windows(doc, window, stats) if window else [doc]:
            stats.count(piece)
            main += records_of(piece, mode)
    for record in main:
        if text_first and rng.random() < text_first:
            record["instruction"] = text_first_instruction(record["instruction"])
    dev: list[dict[str, Any]] = []
    for i in held:
        dev += records_of(docs[i], "eval")
    return main, dev, stats


def described(schema: Schema, descriptions: dict[str, str]) -> Schema:
    """``schema`` with the ``descriptions`` of its items (others are ignored: a catalogue such as Wikidata's
    describes far more); none of them describing an item is an error."""
    if not set(descriptions) & set(schema.names):
        raise InputError(
            f"the descriptions name none of the dataset's types ({', '.join(schema.names[:10])}, ...)"
        )
    items = (
        dataclasses.replace(i, description=descriptions.get(i.name) or i.description) for i in schema.items
    )
    return dataclasses.replace(schema, items=tuple(items))


def read_descriptions(path: str | Path) -> dict[str, str]:
    """Descriptions of types or relations from a JSON object: ``{"name": "what it means"}``, or Wikidata's
    ``{"P17": ["country", "sovereign state of this item"]}`` (FewRel's ``pid2name.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--descriptions {path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--descriptions {path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"--descriptions {path}: expected a JSON object")
    found: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            found.setdefault(value[0], value[1])  # Wikidata: a property id -> [label, description]
        elif isinstance(value, str):
            found[key] = value
        else:
            raise InputError(f"--descriptions {path}: {key!r} must map to a text (or [label, description])")
    return found


def selected(
    schema: Schema, docs: list[Document], exclude: set[str], only: set[str]
) -> tuple[Schema, list[Document]]:
    """``schema`` and ``docs`` without the ``exclude`` types, or with the ``only`` types alone; a name not
    in the schema is an error."""
    names = set(schema.names)
    unknown = sorted((exclude | only) - names)
    if unknown:
        raise InputError(f"{', '.join(unknown)}: not among the dataset's types ({', '.join(schema.names)})")

    def keep(name: str) -> bool:
        return name in only if only else name not in exclude

    schema = dataclasses.replace(schema, items=tuple(i for i in schema.items if keep(i.name)))
    return schema, [
        dataclasses.replace(d, items=[i for i in d.items if keep(item_type(i, d.task))]) for d in docs
    ]


def windows(doc: Document, size: int, stats: Stats | None = None) -> list[Document]:
    """``doc`` cut at sentence boundaries into texts of at most ``size`` characters (`chunk_text`), each
    with the items whose mentions it holds: an entity with a span in the piece, a triple with a head and a
    tail span in it (named as the piece names them), an event whose spans all lie in it. Items of no
    single piece are counted in ``stats`` (``across_windows``)."""
    if len(doc.text) <= size:
        return [doc]
    pieces = chunk_text(doc.text, size, len, overlap=0)
    kept: set[int] = set()
    out = []
    for number, chunk in enumerate(pieces):
        piece = chunk.text.strip()
        lo = chunk.start + chunk.text.index(piece[:1])
        hi = lo + len(piece)
        items = []
        for index, item in enumerate(doc.items):
            inside = _inside(item, lo, hi, doc.text)
            if inside is not None:
                items.append(inside)
                kept.add(index)
        out.append(dataclasses.replace(doc, id=f"{doc.id}#{number}", text=piece, items=_unique(items)))
    if stats is not None:
        for _ in range(len(doc.items) - len(kept)):
            stats.skip("across_windows")
    return out


def _inside(item: Item, lo: int, hi: int, text: str) -> Item | None:
    """``item`` as seen in ``text[lo:hi]`` (spans shifted to the piece), or None."""

    def within(spans: Spans) -> Spans:
        return [(s - lo, e - lo) for s, e in spans if lo <= s and e <= hi]

    if isinstance(item, Entity):
        spans = within(item.spans)
        return dataclasses.replace(item, text=text[lo:hi][slice(*spans[0])], spans=spans) if spans else None
    if isinstance(item, Triple):
        head, tail = within(item.head_spans), within(item.tail_spans)
        if not head or not tail:
            return None
        piece = text[lo:hi]
        return dataclasses.replace(
            item, head=piece[slice(*head[0])], tail=piece[slice(*tail[0])], head_spans=head, tail_spans=tail
        )
    every = [item.trigger_spans, *(a.spans for a in item.arguments)]
    if not all(len(within(spans)) == len(spans) for spans in every):
        return None
    return _shifted(item, -lo)


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

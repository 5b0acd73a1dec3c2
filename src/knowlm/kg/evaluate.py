"""Graph-level evaluation against gold entities (DocRED format: every name of each entity, with its mentions).

Two measures, each for exact names (the graph before resolution) and for the resolver:

- **entity clustering** of the gold mentions: the resolver sees every gold mention (name, type, document,
  position) and clusters them; scored per document by B-cubed and pairwise precision/recall/F1, with the share
  of the entities named in more than one way that end up as one entity without another entity in it;
- **triples** of a store's extractions, at the entity level: each statement of a document's graph is
  (head entity, relation, tail entity); it is correct when its names are names of a gold triple's head and
  tail, and each gold triple is counted once, whatever names the extraction used (a second statement of the
  same gold triple, which an unresolved graph makes, is a false positive).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.ie.convert import docred_text
from knowlm.ie.evaluate import Counts
from knowlm.kg.iri import normalise
from knowlm.kg.resolve import NameKey, Occurrence, Resolution, Resolver


@dataclass
class GoldDocument:
    id: str
    text: str
    entities: list[list[tuple[str, str, int]]]
    """Each entity's mentions: (surface name, type or "", character start), in text order."""
    triples: set[tuple[int, str, int]]
    """(head entity index, relation name, tail entity index)."""


def read_docred(path: str | Path) -> list[GoldDocument]:
    """Gold entities and triples of a DocRED-format file (relation ids named by ``rel_info.json`` beside it,
    when it is there; ids stay ids otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--gold {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"--gold {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, list):
        raise InputError(f"--gold {path}: expected a JSON array of DocRED documents")
    info = path.with_name("rel_info.json")
    names: dict[str, str] = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    documents = []
    for number, record in enumerate(data, 1):
        where = f"{path} document {number}"
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected an object")
        text, entities = docred_text(record, where)
        mentions = [
            [(text[s:e], t or "", s) for (s, e), t in zip(entity.spans, entity.types, strict=True)]
            for entity in entities
        ]
        triples = set()
        for label in record.get("labels", []):
            try:
                h, t, r = int(label["h"]), int(label["t"]), str(label["r"])
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{where}: a label needs 'h', 't' and 'r', got {label!r}") from None
            if not (0 <= h < len(entities) and 0 <= t < len(entities)):
                raise InputError(f"{where}: label {label!r} names an entity it does not have")
            triples.add((h, names.get(r, r), t))
        documents.append(
            GoldDocument(str(record.get("title") or f"document {number}"), text, mentions, triples)
        )
    return documents


def gold_occurrences(documents: Sequence[GoldDocument]) -> list[Occurrence]:
    """Every gold mention as an occurrence (document key: its index)."""
    return [
        Occurrence((normalise(name), normalise(type_)), name, str(d), start, f"{d}:{e}:{start}")
        for d, doc in enumerate(documents)
        for e, mentions in enumerate(doc.entities)
        for name, type_, start in mentions
    ]


def clustering_scores(documents: Sequence[GoldDocument], resolver: Resolver) -> dict[str, Any]:
    """B-cubed and pairwise P/R/F1 of the resolver's clusters of the gold mentions, scored within each
    document, and the share of multi-name entities merged whole and alone."""
    resolution = resolver.resolve(gold_occurrences(documents))
    precision = recall = 0.0
    mentions = pairs_tp = pairs_pred = pairs_gold = 0
    multi = merged = 0
    for d, doc in enumerate(documents):
        gold: list[int] = []
        pred: list[NameKey] = []
        for e, ms in enumerate(doc.entities):
            for name, type_, _ in ms:
                gold.append(e)
                pred.append(resolution.entity((normalise(name), normalise(type_)), str(d)))
        by_gold: dict[int, list[int]] = defaultdict(list)
        by_pred: dict[NameKey, list[int]] = defaultdict(list)
        for i, (g, key) in enumerate(zip(gold, pred, strict=True)):
            by_gold[g].append(i)
            by_pred[key].append(i)
        for g, key in zip(gold, pred, strict=True):
            same = sum(1 for j in by_pred[key] if gold[j] == g)
            precision += same / len(by_pred[key])
            recall += same / len(by_gold[g])
        mentions += len(gold)
        n = len(gold)
        for i in range(n):
            for j in range(i + 1, n):
                same_gold, same_pred = gold[i] == gold[j], pred[i] == pred[j]
                pairs_tp += same_gold and same_pred
                pairs_pred += same_pred
                pairs_gold += same_gold
        for e, ms in enumerate(doc.entities):
            if len({normalise(name) for name, _, _ in ms}) < 2:
                continue
            multi += 1
            clusters = {pred[i] for i in by_gold[e]}
            if len(clusters) == 1 and all(gold[j] == e for j in by_pred[next(iter(clusters))]):
                merged += 1
    p = precision / mentions if mentions else 0.0
    r = recall / mentions if mentions else 0.0
    return {
        "mentions": mentions,
        "entities": sum(len(doc.entities) for doc in documents),
        "bcubed": {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        },
        "pairwise": Counts(pairs_tp, pairs_pred, pairs_gold).report(),
        "multi_name_entities": multi,
        "multi_name_merged": merged,
        "multi_name_share": round(merged / multi, 4) if multi else 0.0,
        "merges": sum(1 for m in resolution.merges if not m.rejected),
    }


def triple_scores(
    documents: Sequence[GoldDocument],
    matched: dict[str, int],
    mentions: Iterable[Any],
    resolution: Resolution,
    relations: set[str] | None = None,
) -> dict[str, Any]:
    """Entity-level triple P/R/F1 of extracted relation mentions (store mentions: ``document`` key and
    ``item``) in the graph that ``resolution`` makes, over the gold documents ``matched`` maps them to (store
    document key -> gold index). ``relations``: the relation names asked for (default: every gold one)."""
    statements: dict[str, dict[tuple[NameKey, str, NameKey], tuple[set[str], set[str]]]] = defaultdict(dict)
    for mention in mentions:
        item = mention.item
        if "relation" not in item or mention.document not in matched:
            continue
        relation = normalise(item["relation"])
        if relations is not None and relation not in relations:
            continue
        keys = [(normalise(item[k]), normalise(item.get(f"{k}_type") or "")) for k in ("head", "tail")]
        head, tail = (resolution.entity(k, mention.document) for k in keys)
        names = statements[mention.document].setdefault((head, relation, tail), (set(), set()))
        names[0].add(keys[0][0])
        names[1].add(keys[1][0])
    tp = predicted = gold_total = 0
    for key, index in matched.items():
        doc = documents[index]
        gold = [(h, normalise(r), t) for h, r, t in sorted(doc.triples)]
        if relations is not None:
            gold = [g for g in gold if g[1] in relations]
        gold_total += len(gold)
        entity_names = [{normalise(name) for name, _, _ in ms} for ms in doc.entities]
        used: set[int] = set()
        for (_, relation, _), (heads, tails) in sorted(statements[key].items()):
            predicted += 1
            for i, (h, r, t) in enumerate(gold):
                if i not in used and r == relation and heads & entity_names[h] and tails & entity_names[t]:
                    used.add(i)
                    tp += 1
                    break
    return {"documents": len(matched), **Counts(tp, predicted, gold_total).report()}


def evaluate_store(
    store: Any, documents: Sequence[GoldDocument], resolver: Resolver | None = None
) -> dict[str, Any]:
    """Clustering of the gold mentions and the triples of ``store`` (a GraphStore), exact names against the
    resolver (the store's settings, else the defaults). The store's documents are matched to gold documents
    by text; triples are scored on the relations the store's extractions use."""
    if resolver is None:
        settings = store.settings()
        resolver = settings.resolver() if settings else Resolver()
    exact = Resolver(enabled=False)
    result: dict[str, Any] = {
        "clustering": {
            "exact": clustering_scores(documents, exact),
            "resolved": clustering_scores(documents, resolver),
        }
    }
    by_text = {" ".join(doc.text.split()): i for i, doc in enumerate(documents)}
    matched = {
        key: by_text[" ".join(text.split())]
        for key, text in store.document_texts().items()
        if " ".join(text.split()) in by_text
    }
    if matched:
        mentions = store.mentions()
        relations = {normalise(m.item["relation"]) for m in mentions if "relation" in m.item}
        aliases = store.aliases()
        occurrences = list(store.occurrences(mentions))
        result["triples"] = {
            name: triple_scores(
                documents, matched, mentions, r.resolve(occurrences, store.rejected(), aliases), relations
            )
            for name, r in (("exact", exact), ("resolved", resolver))
        }
        result["triples"]["relations"] = sorted(relations)
    return result

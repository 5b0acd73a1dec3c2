"""Entity resolution: which names in a graph are one entity, decided by stated rules and kept as data.

The input is every occurrence of an entity name (its key: normalised name and type; its surface form; its
document; its position there). The output is a :class:`Resolution`: the merges, each with its rule, score and
evidence, and what they imply: the names that are one entity everywhere (clusters) and the short names that
stand for a full name within one document.

Rules, strongest first (``RULES``):

- ``alias``: the user's alias table (``kg build --aliases``) names an alias for an entity;
- ``same name``: one normalised name, one typed and one untyped key (a relation's untyped argument joins the
  typed entity of that name when there is exactly one);
- ``same form``: the same name once articles, punctuation and case are set aside ("the United States" /
  "United States", "World War I." / "World War I");
- ``legal suffix``: a name and the same name with a company suffix ("Apple" / "Apple Inc.", 阿里巴巴 /
  阿里巴巴集团);
- ``country name``: a country's short or official name and its name ("U.S." / "United States", "PRC" /
  "China": `knowlm.kg.countries`; a short name of three letters or fewer only in capitals, so "us" is no
  country; demonyms are not: Re-DocRED keeps "Canadian" apart from "Canada" more often than not);
- ``acronym``: an all-capitals short form spelling the initials of a longer name ("USGS" / "United States
  Geological Survey", "NAAFI" / "Navy, Army and Air Force Institutes");
- ``chinese short name``: a Chinese name made of characters of a longer one, in order, starting with its first
  and skipping some (北大 / 北京大学; 北京 is no short name of 北京大学), when exactly one name of the graph
  fits;
- ``spelling``: names that differ in one letter of one word (char-trigram blocking, then an edit distance),
  never a country's name ("Germans" is no spelling of "Germany");
- ``embedding``: names whose embeddings (a model the user gives) are at least ``embedding_threshold`` similar;
- ``in document``: within one document, a later name that is part of an earlier full name ("Vann" after
  "Bernard Vann", "Johns Hopkins" after "Johns Hopkins University"), an acronym of it or a Chinese short name
  of it, when it matches exactly one full name there. A surname or a part of a name is the same entity only in
  its document; an acronym or Chinese short name found so in some documents, and never for another name, is
  merged everywhere.

Names of different (non-empty) types never merge. The canonical name of an entity is its most frequent full
form: the member most often mentioned among those that are not the short side of a merge (ties: more words,
then the longer name, then a typed name, then alphabetical). Everything is a function of the occurrences and the rejected
merges, so resolving twice, or again after adding documents, gives the same result as resolving at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from knowlm.kg.iri import digest, normalise

NameKey = tuple[str, str]
"""(normalised name, normalised type; "" when untyped)."""

RULES = (
    "alias",
    "same name",
    "same form",
    "legal suffix",
    "country name",
    "acronym",
    "chinese short name",
    "spelling",
    "embedding",
    "in document",
)
SHORT_SIDE_RULES = {"alias", "acronym", "country name", "chinese short name", "in document", "legal suffix"}
"""Rules whose left name is a short form of the right one (it is never chosen as the canonical name)."""

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "&",
        "for",
        "in",
        "on",
        "at",
        "to",
        "de",
        "du",
        "des",
        "la",
        "le",
        "les",
        "del",
        "della",
        "di",
        "da",
        "van",
        "von",
        "der",
        "den",
        "und",
        "y",
        "e",
    ]
)
ARTICLES = ("the ", "a ", "an ")
LEGAL_SUFFIXES = (
    "inc", "incorporated", "ltd", "limited", "llc", "corp", "corporation", "company", "co", "plc", "group",
    "ag", "gmbh", "sa", "nv", "bv", "holdings", "co ltd",
)  # fmt: skip
CHINESE_SUFFIXES = (
    "股份有限公司",
    "集团有限公司",
    "有限责任公司",
    "有限公司",
    "集团公司",
    "控股集团",
    "集团",
    "公司",
    "控股",
)
PERSON_TYPES = frozenset({"per", "person", "people", "人物", "人名", "人", "姓名"})
VALUE_TYPES = frozenset(
    {"time", "date", "num", "number", "money", "percent", "quantity", "时间", "日期", "数字", "数量", "金额"}
)
"""Values, not entities: "June 10, 2006" and "2006" stay as written."""
_ROMAN = re.compile(r"^(?=[ivxlcdm]+$)m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def form(name: str) -> str:
    """A name with case, punctuation and a leading English article set aside ("+" and "#" are part of a name:
    Galaxy S9 / Galaxy S9+, C / C++ / C#)."""
    text = normalise(name)
    text = "".join(
        c if c.isalnum() or c.isspace() or c in "+#" else (" " if c in "-–/&" else "") for c in text
    )
    text = " ".join(text.split())
    for article in ARTICLES:
        if text.startswith(article) and len(text) > len(article):
            text = text[len(article) :]
    return text


def _tokens(name: str) -> list[str]:
    return form(name).split()


def _strip_suffix(text: str) -> str:
    """``text`` without one trailing company suffix (English word or Chinese), or itself."""
    for suffix in LEGAL_SUFFIXES:
        if text.endswith(" " + suffix):
            return text[: -len(suffix) - 1]
    for suffix in CHINESE_SUFFIXES:
        if text.endswith(suffix) and len(text) - len(suffix) >= 2:
            return text[: -len(suffix)]
    return text


def acronym_letters(label: str) -> str | None:
    """The letters of ``label`` when it is written as an acronym ("USGS", "U.S.", "BBC1"), else None."""
    text = unicodedata.normalize("NFKC", label).strip()
    if not re.fullmatch(r"[A-Z][A-Za-z0-9.&\-]{1,11}", text):
        return None
    letters = re.sub(r"[^A-Za-z0-9]", "", text)
    capitals = sum(c.isupper() for c in letters)
    if capitals < 2 or capitals < len(letters) - 1 or not 2 <= len(letters) <= 10:
        return None
    return letters.casefold()


def initials(name: str) -> set[str]:
    """The spellings of ``name``'s initials that an acronym of it may use: with and without stop words and a
    company suffix, hyphenated words as one word or two."""
    text = form(name)
    variants = {text, _strip_suffix(text)}
    found: set[str] = set()
    for variant in variants:
        for words in (variant.split(), variant.replace("-", " ").split()):
            if len(words) < 2:
                continue
            found.add("".join(w[0] for w in words))
            content = [w for w in words if w not in STOPWORDS]
            if len(content) >= 2:
                found.add("".join(w[0] for w in content))
    return found


def is_acronym_of(short_label: str, long_name: str) -> bool:
    letters = acronym_letters(short_label)
    return letters is not None and letters in initials(long_name)


def is_part_of(short: str, long: str) -> bool:
    """A person's name shortened: ``short``'s words are a run at the start or the end of ``long``'s, or its first
    and last word, with a word that is neither a stop word nor a number ("Vann" / "Bernard Vann")."""
    s, words = _tokens(short), _tokens(long)
    if not s or len(s) >= len(words) or not any(w not in STOPWORDS and not w.isdigit() for w in s):
        return False
    if any(_is_cjk(c) for c in short):
        return False
    n = len(s)
    if words[:n] == s or words[-n:] == s:
        return True
    return n == 2 and s == [words[0], words[-1]]


def is_initialled(short: str, long: str) -> bool:
    """A person's name with given names as initials: "J. H. Dearle" / "John Henry Dearle"."""
    s, words = _tokens(short), _tokens(long)
    if len(s) != len(words) or len(s) < 2 or s[-1] != words[-1] or s == words:
        return False
    return all(a == b or (len(a) == 1 and b.startswith(a)) for a, b in zip(s[:-1], words[:-1], strict=True))


def is_chinese_short(short: str, long: str) -> bool:
    """A Chinese name of two or more characters found in a longer one in order, starting with its first."""
    s, full = form(short).replace(" ", ""), form(long).replace(" ", "")
    if len(s) < 2 or len(s) >= len(full) or not all(_is_cjk(c) for c in s) or s[0] != full[0]:
        return False
    position = 0
    for ch in s:
        position = full.find(ch, position)
        if position < 0:
            return False
        position += 1
    return True


def is_spelling_variant(a: str, b: str) -> bool:
    """The same words but one, which differs by replacing one letter (two in a word of eight or more) after
    the same first letter ("Choopong" / "Choupong"); an added letter is not a variant (Germany / German,
    Catholics / Catholic), and numbers and Roman numerals must agree."""
    x, y = _tokens(a), _tokens(b)
    if len(x) != len(y) or x == y:
        return False
    diff = [(u, v) for u, v in zip(x, y, strict=True) if u != v]
    if len(diff) != 1:
        return False
    u, v = diff[0]
    if len(u) != len(v) or len(u) < 5 or u[0] != v[0] or any(c.isdigit() for c in u + v):
        return False
    if _ROMAN.match(u) or _ROMAN.match(v):
        return False
    return sum(p != q for p, q in zip(u, v, strict=True)) <= (2 if len(u) >= 8 else 1)


def trigrams(name: str) -> set[str]:
    text = f" {form(name)} "
    return {text[i : i + 3] for i in range(len(text) - 2)}


@dataclass(frozen=True)
class Occurrence:
    """One mention of an entity name."""

    key: NameKey
    label: str
    document: str
    position: int
    mention: str = ""


@dataclass
class Merge:
    """One decision that two names are one entity (``document``: only within that document)."""

    rule: str
    score: float
    left: NameKey
    right: NameKey
    document: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    rejected: bool = False

    @property
    def id(self) -> str:
        a, b = sorted([self.left, self.right])
        return digest(*a, *b, self.document or "")


@dataclass
class Name:
    key: NameKey
    labels: Counter[str] = field(default_factory=Counter)
    documents: dict[str, tuple[int, str]] = field(default_factory=dict)
    """document -> (first position, first mention)."""
    mentions: int = 0

    @property
    def label(self) -> str:
        return min(self.labels.items(), key=lambda kv: label_rank(*kv))[0]


def label_rank(label: str, count: int) -> tuple[bool, int, str]:
    """How a surface form ranks as the label of its name (smallest first): not all lower-case where the script
    has case ("Steve Jobs" over "steve jobs"), then the most frequent, then alphabetical."""
    lowered = label.lower() == label and label.upper() != label
    return lowered, -count, label


@dataclass
class Resolution:
    merges: list[Merge]
    canonical: dict[NameKey, NameKey]
    """Every name that is part of a larger entity -> the entity's canonical name (itself included)."""
    local: dict[tuple[str, NameKey], NameKey]
    """(document, name) -> the canonical name it stands for in that document."""
    labels: dict[NameKey, str]
    types: dict[NameKey, str]
    """canonical name -> the entity's type ("" when untyped)."""

    def entity(self, key: NameKey, document: str) -> NameKey:
        """The canonical name of the entity that ``key`` stands for in ``document``."""
        return self.local.get((document, key)) or self.canonical.get(key, key)

    def members(self) -> dict[NameKey, list[NameKey]]:
        groups: dict[NameKey, list[NameKey]] = defaultdict(list)
        for key, root in self.canonical.items():
            groups[root].append(key)
        for (_, key), root in self.local.items():
            if key not in groups[root]:
                groups[root].append(key)
        return groups


class _Clusters:
    """Union-find over names that never joins two names of different non-empty types."""

    def __init__(self, types: dict[NameKey, str]) -> None:
        self.parent: dict[NameKey, NameKey] = {}
        self.types = {k: {t} if t else set() for k, t in types.items()}

    def find(self, key: NameKey) -> NameKey:
        root = key
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while key != root:
            self.parent[key], key = root, self.parent.get(key, key)
        return root

    def can_join(self, a: NameKey, b: NameKey) -> bool:
        ra, rb = self.find(a), self.find(b)
        return ra == rb or len(self.types[ra] | self.types[rb]) <= 1

    def join(self, a: NameKey, b: NameKey) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or not self.can_join(ra, rb):
            return False
        self.parent[rb] = ra
        self.types[ra] |= self.types.pop(rb)
        return True


@dataclass
class Resolver:
    """Settings of the rules; ``resolve`` applies them."""

    enabled: bool = True
    """False: only the user's aliases merge names (exact names otherwise, the graph before resolution)."""
    spelling: bool = True
    global_short_forms: bool = True
    """Merge an acronym (or a Chinese short name of two or three characters) with the one long name it fits
    in the graph, even without a document that has both."""
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None
    embedding_threshold: float = 0.92
    max_block: int = 200
    """Trigrams shared by more names than this are too common to propose pairs."""

    def resolve(
        self,
        occurrences: Iterable[Occurrence],
        rejected: Iterable[str] = (),
        aliases: dict[str, str] | None = None,
    ) -> Resolution:
        """Resolve the names of ``occurrences``; ``rejected``: ids of merges a user undid; ``aliases``: normalised
        alias -> entity name, the user's table (applied whatever the other rules say)."""
        every = _names(occurrences)
        veto = set(rejected)
        given = list(_alias_merges(every, aliases or {}))
        names = {k: v for k, v in every.items() if k[1] not in VALUE_TYPES}
        clusters = _Clusters({k: k[1] for k in every})
        merges: list[Merge] = []

        def add(merge: Merge) -> bool:
            if merge.id in veto:
                merge.rejected = True
                merges.append(merge)
                return False
            if clusters.join(merge.right, merge.left) or clusters.find(merge.left) == clusters.find(
                merge.right
            ):
                merges.append(merge)
                return True
            return False

        for merge in given:
            add(merge)
        if not self.enabled:
            return self._result(every, clusters, merges)
        for merge in self._global(names):
            add(merge)
        for merge in self._documents(names, clusters, veto):
            if merge.document is None:
                add(merge)
            else:
                merges.append(merge)
        return self._result(every, clusters, merges)

    def _result(self, names: dict[NameKey, Name], clusters: _Clusters, merges: list[Merge]) -> Resolution:
        """Entities from the clusters: canonical names, types, labels; local merges point at the full name's
        entity as finally clustered."""
        local: dict[tuple[str, NameKey], NameKey] = {}
        applied = [m for m in merges if not m.rejected]
        roots = {key: clusters.find(key) for key in names}
        groups: dict[NameKey, list[NameKey]] = defaultdict(list)
        for key, root in roots.items():
            groups[root].append(key)
        short = {m.left for m in applied if m.rule in SHORT_SIDE_RULES}
        mentions = {key: names[key].mentions for key in names}
        canonical_of: dict[NameKey, NameKey] = {}
        labels: dict[NameKey, str] = {}
        entity_types: dict[NameKey, str] = {}
        for members in groups.values():
            full = [k for k in members if k not in short] or members
            best = max(
                full, key=lambda k: (mentions[k], len(k[0].split()), len(k[0]), bool(k[1]), _reverse(k))
            )
            weights: Counter[str] = Counter()
            for k in members:
                if k[1]:
                    weights[k[1]] += names[k].mentions
            type_ = min(weights.items(), key=lambda kv: (-kv[1], kv[0]))[0] if weights else ""
            for k in members:
                canonical_of[k] = best
            labels[best] = names[best].label
            entity_types[best] = type_
        for m in applied:
            if m.document is not None:
                local[(m.document, m.left)] = canonical_of[m.right]
        canonical = {k: v for k, v in canonical_of.items() if len(groups[roots[k]]) > 1}
        merges.sort(key=lambda m: (RULES.index(m.rule), m.document or "", m.left, m.right))
        return Resolution(merges, canonical, local, labels, entity_types)

    # --- rules over the whole graph ------------------------------------------------------------------

    def _global(self, names: dict[NameKey, Name]) -> Iterator[Merge]:
        by_name: dict[str, list[NameKey]] = defaultdict(list)
        by_form: dict[str, list[NameKey]] = defaultdict(list)
        for key in names:
            by_name[key[0]].append(key)
            by_form[form(key[0])].append(key)
        for keys in by_name.values():
            typed = sorted(k for k in keys if k[1])
            if len(typed) == 1 and len(keys) == 2:
                untyped = next(k for k in keys if not k[1])
                yield Merge("same name", 1.0, untyped, typed[0], evidence=_both(names, untyped, typed[0]))
        for text, keys in by_form.items():
            if len(keys) < 2 or not text:
                continue
            ordered = sorted(keys, key=lambda k: (-names[k].mentions, k))
            for key in ordered[1:]:
                for other in ordered:
                    if other != key and (other[1] == key[1] or not other[1] or not key[1]):
                        if other[0] != key[0]:
                            yield Merge("same form", 1.0, key, other, evidence=_both(names, key, other))
                        break
        for text, keys in by_form.items():
            base = _strip_suffix(text)
            if base == text:
                continue
            for short in by_form.get(base, []):
                for full in keys:
                    if short[1] == full[1] or not short[1] or not full[1]:
                        yield Merge("legal suffix", 0.95, short, full, evidence=_both(names, short, full))
        yield from _country_names(names)
        if self.global_short_forms:
            yield from self._acronyms(names)
            yield from self._chinese_short(names)
        if self.spelling or self.embed is not None:
            yield from self._similar(names)

    def _acronyms(self, names: dict[NameKey, Name]) -> Iterator[Merge]:
        by_initials: dict[str, list[NameKey]] = defaultdict(list)
        for key in names:
            for letters in initials(key[0]):
                if len(letters) >= 3:
                    by_initials[letters].append(key)
        for key, name in names.items():
            found = acronym_letters(name.label)
            if found is None or len(found) < 3:
                continue
            longs = [k for k in by_initials.get(found, []) if not k[1] or not key[1] or k[1] == key[1]]
            if len({form(k[0]) for k in longs}) == 1:
                full = max(longs, key=lambda k: (names[k].mentions, k))
                yield Merge("acronym", 0.9, key, full, evidence=_both(names, key, full))

    def _chinese_short(self, names: dict[NameKey, Name]) -> Iterator[Merge]:
        """A Chinese abbreviation of two or three characters that skips characters (北大 / 北京大学, not 北京 / 北京大学) of exactly one
        longer name of its type in the graph; people's names are left to the rules within a document."""
        by_first: dict[str, list[NameKey]] = defaultdict(list)
        for key in names:
            if key[0] and _is_cjk(key[0][0]):
                by_first[key[0][0]].append(key)
        for key in names:
            if not key[0] or not _is_cjk(key[0][0]) or len(key[0]) > 3 or key[1] in PERSON_TYPES:
                continue
            longs = [
                k
                for k in by_first[key[0][0]]
                if (not k[1] or not key[1] or k[1] == key[1])
                and key[0] not in k[0]
                and is_chinese_short(key[0], k[0])
            ]
            if len({form(k[0]) for k in longs}) == 1:
                full = max(longs, key=lambda k: (names[k].mentions, k))
                yield Merge("chinese short name", 0.85, key, full, evidence=_both(names, key, full))

    def _similar(self, names: dict[NameKey, Name]) -> Iterator[Merge]:
        """Pairs from char-trigram blocking (names sharing half their trigrams; a quarter when an embedding
        model judges them), accepted by the spelling rule or by embeddings."""
        floor = 0.5 if self.embed is None else 0.25
        keys = sorted(names)
        forms = [form(k[0]) for k in keys]
        grams = [trigrams(k[0]) for k in keys]
        index: dict[str, list[int]] = defaultdict(list)
        for i, gs in enumerate(grams):
            for g in gs:
                index[g].append(i)
        pairs: list[tuple[int, int, float]] = []
        for i, gs in enumerate(grams):
            shared: Counter[int] = Counter()
            for g in gs:
                posting = index[g]
                if len(posting) <= self.max_block:
                    shared.update(j for j in posting if j > i)
            for j, count in shared.items():
                a, b = keys[i], keys[j]
                if a[1] and b[1] and a[1] != b[1]:
                    continue
                jaccard = count / (len(gs) + len(grams[j]) - count)
                if jaccard >= floor:
                    pairs.append((i, j, jaccard))
        similarity: dict[tuple[int, int], float] = {}
        if self.embed is not None and pairs:
            needed = sorted({i for i, _, _ in pairs} | {j for _, j, _ in pairs})
            vectors = dict(zip(needed, self.embed([names[keys[i]].label for i in needed]), strict=True))
            for i, j, _ in pairs:
                similarity[(i, j)] = _cosine(vectors[i], vectors[j])
        for i, j, jaccard in pairs:
            a, b = keys[i], keys[j]
            if forms[i] == forms[j]:
                continue
            countries = forms[i] in COUNTRY_FORMS or forms[j] in COUNTRY_FORMS  # Germany / Germans
            if self.spelling and jaccard >= 0.5 and not countries and is_spelling_variant(a[0], b[0]):
                left, right = sorted((a, b), key=lambda k: (names[k].mentions, k))
                yield Merge("spelling", round(jaccard, 3), left, right, evidence=_both(names, left, right))
            elif similarity.get((i, j), -2.0) >= self.embedding_threshold:
                left, right = sorted((a, b), key=lambda k: (names[k].mentions, k))
                score = round(similarity[(i, j)], 3)
                yield Merge("embedding", score, left, right, evidence=_both(names, left, right))

    # --- rules within one document -------------------------------------------------------------------

    def _documents(self, names: dict[NameKey, Name], clusters: _Clusters, veto: set[str]) -> list[Merge]:
        by_doc: dict[str, list[NameKey]] = defaultdict(list)
        for key, name in names.items():
            for doc in name.documents:
                by_doc[doc].append(key)
        local: list[Merge] = []
        links: dict[NameKey, set[NameKey]] = defaultdict(set)
        kinds: dict[tuple[NameKey, NameKey], str] = {}
        for doc in sorted(by_doc):
            keys = sorted(by_doc[doc], key=lambda k: (names[k].documents[doc][0], k))
            for n, short in enumerate(keys):
                found: dict[NameKey, tuple[NameKey, str]] = {}
                for full in keys[:n]:
                    root = clusters.find(full)
                    if root == clusters.find(short) or not clusters.can_join(short, full):
                        continue
                    kind = _document_rule(names[short].label, short, full)
                    if kind and root not in found:
                        found[root] = (full, kind)
                if len(found) != 1:
                    continue
                full, kind = next(iter(found.values()))
                evidence = {
                    "documents": [doc],
                    "mentions": [names[full].documents[doc][1], names[short].documents[doc][1]],
                    "how": kind,
                }
                merge = Merge("in document", 0.9, short, full, document=doc, evidence=evidence)
                if merge.id in veto:
                    merge.rejected = True
                    local.append(merge)
                    continue
                local.append(merge)
                if kind in ("acronym", "chinese short name"):
                    links[short].add(clusters.find(full))
                    kinds[(short, clusters.find(full))] = kind
        found_in: dict[NameKey, list[str]] = defaultdict(list)  # a short name's documents with its full name
        for m in local:
            if not m.rejected:
                found_in[m.left].append(m.document or "")
        for short, targets in sorted(links.items()):
            if len(targets) == 1:
                target = next(iter(targets))
                docs = sorted(found_in[short])
                evidence = {"documents": docs[:5], "how": "found in a document with the full name"}
                local.append(Merge(kinds[(short, target)], 0.9, short, target, evidence=evidence))
        return local


def _document_rule(short_label: str, short: NameKey, full: NameKey) -> str | None:
    if is_acronym_of(short_label, full[0]):
        return "acronym"
    if is_chinese_short(short[0], full[0]):
        return "chinese short name"
    if (full[1] or short[1]) in PERSON_TYPES:
        if is_part_of(short[0], full[0]):
            return "part of the name"
        if is_initialled(short[0], full[0]):
            return "initials"
    return None


def _reverse(key: NameKey) -> tuple[int, ...]:
    """A sort key that prefers the alphabetically first name (then type) under ``max``."""
    return tuple(-ord(c) for c in f"{key[0]}\x00{key[1]}")


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


def _country_forms() -> dict[str, str]:
    """The form of each country name and of each of its other names -> the form of the country's name."""
    from knowlm.kg.countries import COUNTRY_NAMES

    found: dict[str, str] = {}
    for country, others in COUNTRY_NAMES.items():
        for name in (country, *others):
            found[form(name)] = form(country)
    return found


COUNTRY_FORMS = _country_forms()


def _country_names(names: dict[NameKey, Name]) -> Iterator[Merge]:
    """Each other name of a country (a short or official name; "US", "UK" only written in capitals) into the
    country's own name of a compatible type when the graph has it, else into its most mentioned other
    name."""
    by_country: dict[str, list[NameKey]] = defaultdict(list)
    for key, name in names.items():
        country = COUNTRY_FORMS.get(form(key[0]))
        if country is not None and (len(form(key[0])) > 3 or name.label.upper() == name.label):
            by_country[country].append(key)
    for country, keys in sorted(by_country.items()):
        ordered = sorted(keys, key=lambda k: (form(k[0]) != country, -names[k].mentions, k))
        for key in ordered[1:]:
            anchor = next(
                (a for a in ordered if a != key and (not a[1] or not key[1] or a[1] == key[1])), None
            )
            if anchor is not None and form(anchor[0]) != form(key[0]):
                yield Merge("country name", 0.9, key, anchor, evidence=_both(names, key, anchor))


def _both(names: dict[NameKey, Name], a: NameKey, b: NameKey) -> dict[str, Any]:
    shared = sorted(set(names[a].documents) & set(names[b].documents))
    evidence: dict[str, Any] = {"mentions": [names[a].mentions, names[b].mentions]}
    if shared:
        evidence["documents"] = shared[:5]
    return evidence


def _alias_merges(names: dict[NameKey, Name], aliases: dict[str, str]) -> Iterator[Merge]:
    """A merge of each name that is a user's alias into its entity's name of the same type (a name not yet
    mentioned is added with no mentions)."""
    for key in sorted(names):
        target = aliases.get(key[0])
        if target is None or normalise(target) == key[0]:
            continue
        full = (normalise(target), key[1])
        if full not in names:
            names[full] = Name(full, Counter({" ".join(target.split()): 1}))
        yield Merge("alias", 1.0, key, full, evidence={"source": "alias table"})


def _names(occurrences: Iterable[Occurrence]) -> dict[NameKey, Name]:
    names: dict[NameKey, Name] = {}
    for occ in occurrences:
        name = names.get(occ.key)
        if name is None:
            name = names[occ.key] = Name(occ.key)
        name.labels[occ.label] += 1
        name.mentions += 1
        first = name.documents.get(occ.document)
        if first is None or (occ.position, occ.mention) < first:
            name.documents[occ.document] = (occ.position, occ.mention)
    return dict(sorted(names.items()))

"""Document cleaning and deduplication, with a reason for every document dropped or changed.

`Cleaner` runs the character-level rules (Unicode normalization, control characters, length, symbol ratio,
repeated lines, block list); `dup_ngram_fractions`, `MinHasher` and `LSHBands` work on the token ids of a
whole batch of documents at once (vectorized hashing, so they cost little next to tokenization);
`Deduplicator` keeps exact hashes and LSH band keys across all sources.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.errors import InputError

# C0/C1 controls but tab and newline, zero-width characters, BOM, the replacement character
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffd]")
_CRLF = re.compile(r"\r\n?")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# characters that are neither word characters (letters, digits, CJK), whitespace nor common punctuation
_SYMBOL = re.compile(
    r"""[^\w\s.,;:!?'"()\[\]\-–—/%&@#+*=<>~|\\$€£¥。，、；：？！“”‘’（）《》【】「」『』…·]"""
)


@dataclass(frozen=True)
class CleanRules:
    normalize: str = "NFC"
    min_chars: int = 1
    max_chars: int = 1_000_000
    max_symbol_ratio: float = 1.0
    max_repeated_lines: float = 1.0
    max_dup_ngrams: float = 1.0
    ngram: int = 10
    blocklist: tuple[str, ...] = ()


def load_blocklist(path: str | Path) -> tuple[str, ...]:
    """Phrases to block, one a line (``#`` starts a comment); matched case-insensitively."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--blocklist {path}: no such file")
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line)
    if not words:
        raise InputError(f"--blocklist {path}: no phrases in the file")
    return tuple(words)


class Cleaner:
    """``clean(text) -> (text or None, reason dropped or None, changes)``; reasons and changes are the
    counter names the preparation reports."""

    def __init__(self, rules: CleanRules) -> None:
        self.rules = rules
        self._block = (
            re.compile("|".join(re.escape(w) for w in sorted(rules.blocklist, key=len, reverse=True)), re.I)
            if rules.blocklist
            else None
        )

    def clean(self, text: str) -> tuple[str | None, str | None, list[str]]:
        r = self.rules
        changes = []
        if r.normalize != "none" and not unicodedata.is_normalized(r.normalize, text):  # type: ignore[arg-type]
            text = unicodedata.normalize(r.normalize, text)  # type: ignore[arg-type]
            changes.append("unicode_normalized")
        text, n = _CONTROL.subn("", text)
        if n:
            changes.append("control_chars_removed")
        stripped = _BLANK_LINES.sub("\n\n", _CRLF.sub("\n", text)).strip()
        if stripped != text:
            changes.append("whitespace_trimmed")
        text = stripped
        if len(text) < r.min_chars:
            return None, "too_short" if text else "empty", changes
        if len(text) > r.max_chars:
            return None, "too_long", changes
        if r.max_symbol_ratio < 1 and len(_SYMBOL.findall(text)) > r.max_symbol_ratio * len(text):
            return None, "symbols", changes
        if r.max_repeated_lines < 1:
            lines = [line for line in text.split("\n") if line.strip()]
            if len(lines) > 1 and 1 - len(set(lines)) / len(lines) > r.max_repeated_lines:
                return None, "repeated_lines", changes
        if self._block is not None and self._block.search(text):
            return None, "blocklist", changes
        return text, None, changes


def text_hash(text: str) -> int:
    """64-bit hash of the text with case and whitespace folded (exact dedup)."""
    folded = " ".join(text.lower().split())
    return int.from_bytes(hashlib.blake2b(folded.encode(), digest_size=8).digest(), "little")


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_BASE = np.uint64(1_000_003)


def _mix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, in place: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= _MIX1
        h ^= h >> np.uint64(27)
        h *= _MIX2
        h ^= h >> np.uint64(31)
    return h


def _polynomial(columns: Iterable[Any]) -> Any:
    """``h = h * BASE + x + 1`` over the columns in order: an (unmixed) hash of each sequence read across them."""
    h: Any = np.uint64(0)
    with np.errstate(over="ignore"):
        for column in columns:
            h = h * _BASE + column + np.uint64(1)
    return h


def ngram_hashes(ids: np.ndarray, lengths: np.ndarray | list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Well-mixed 64-bit hashes of the n-grams of several documents whose token ids are concatenated in
    ``ids`` (``lengths`` tokens each). Document k's hashes are ``hashes[offsets[k]:offsets[k + 1]]``: one per
    n-gram, or one of its whole sequence when it is shorter than n, none when it is empty."""
    ids = np.asarray(ids, dtype=np.uint64)
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    hashes = np.empty(offsets[-1], dtype=np.uint64)
    if len(ids) >= n:  # a rolling polynomial over the concatenation; keep the windows inside a document
        windows = len(ids) - n + 1
        h = _polynomial(ids[k : k + windows] for k in range(n))
        inside = np.arange(n, windows + n) <= np.repeat(ends, lengths)[:windows]
        hashes[np.repeat(lengths >= n, counts)] = h[inside]
    for k in np.flatnonzero((lengths > 0) & (lengths < n)):  # short documents: their whole sequence
        hashes[offsets[k]] = _polynomial(ids[ends[k] - lengths[k] : ends[k]])
    return _mix(hashes), offsets


def dup_ngram_fractions(ids: np.ndarray, lengths: np.ndarray | list[int], n: int) -> np.ndarray:
    """For each document (concatenated as in `ngram_hashes`), the share of its n-grams that repeat an n-gram
    seen before in the same document (0 for a document of at most n tokens)."""
    hashes, offsets = ngram_hashes(ids, lengths, n)
    fractions = np.zeros(len(offsets) - 1)
    for k in np.flatnonzero(np.diff(offsets) > 1):
        ordered = np.sort(hashes[offsets[k] : offsets[k + 1]])
        fractions[k] = np.count_nonzero(ordered[1:] == ordered[:-1]) / len(ordered)
    return fractions


class MinHasher:
    """MinHash signatures from token-id shingles: ``num_perm`` multiply-add-shift hash functions
    ``(a * x + b) mod 2**64 >> 32``, computed for a batch of documents at once."""

    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self.a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def signatures(self, ids: np.ndarray, lengths: np.ndarray | list[int]) -> np.ndarray:
        """One signature (row) per document of ``ids`` (concatenated, ``lengths`` tokens each); an empty
        document gets the all-maximum signature."""
        shingles, offsets = ngram_hashes(ids, lengths, self.shingle)
        sig = np.full((len(offsets) - 1, self.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
        docs = np.flatnonzero(np.diff(offsets) > 0)
        starts = offsets[docs]
        width = max(256, 2**19 // self.num_perm)  # a block of the (perms x shingles) matrix stays in cache
        buffer = np.empty((self.num_perm, min(width, len(shingles))), dtype=np.uint64)
        a, b = self.a[:, None], self.b[:, None]
        for begin in range(0, len(shingles), width):
            block = shingles[begin : begin + width]
            lo = np.searchsorted(starts, begin, side="right") - 1  # documents lo..hi-1 meet this block
            hi = np.searchsorted(starts, begin + len(block), side="left")
            values = buffer[:, : len(block)]
            np.multiply(a, block[None, :], out=values)  # in place, wrapping uint64
            values += b
            mins = np.minimum.reduceat(values, np.maximum(starts[lo:hi], begin) - begin, axis=1)
            rows = docs[lo:hi]
            sig[rows] = np.minimum(sig[rows], mins.T)
        # >> 32 after the minimum: the shift is monotone, so min(v >> 32) == min(v) >> 32 with one pass less
        sig >>= np.uint64(32)
        return sig


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH bands b and rows per band r (b * r <= num_perm) whose collision curve ``1 - (1 - s**r)**b`` best
    separates Jaccard similarity s around ``threshold``: the least false-positive area below it plus
    false-negative area above it (equal weights)."""
    s = np.linspace(0.0, 1.0, 501)
    below, above = s <= threshold, s >= threshold
    best: tuple[float, int, int] = (np.inf, 1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands
            error = np.trapezoid(p[below], s[below]) + np.trapezoid(1.0 - p[above], s[above])
            best = min(best, (float(error), bands, rows))
    return best[1], best[2]


class LSHBands:
    """Cuts MinHash signatures into ``bands`` bands of ``rows`` values and hashes each band to a 64-bit key:
    two documents are near-duplicate candidates when any band key agrees."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128) -> None:
        self.bands, self.rows = lsh_bands(threshold, num_perm)

    def keys(self, signatures: np.ndarray) -> np.ndarray:
        """Band keys, shape (documents, bands), of signatures of shape (documents, num_perm)."""
        banded = signatures[:, : self.bands * self.rows].reshape(len(signatures), self.bands, self.rows)
        return _mix(_polynomial(banded[:, :, row] for row in range(self.rows)))


class Deduplicator:
    """Exact (hash) and near-duplicate (MinHash LSH band keys, Jaccard >= threshold) detection across
    sources; ``check`` says why a document is a duplicate, or records it and returns None."""

    def __init__(self, mode: str, threshold: float = 0.8, num_perm: int = 128) -> None:
        self.mode = mode
        self.hashes: set[int] = set()
        self.tables: list[set[int]] = []
        if mode == "near":
            self.tables = [set() for _ in range(LSHBands(threshold, num_perm).bands)]

    def check(self, digest: int, keys: np.ndarray | None) -> str | None:
        """``keys``: the document's LSH band keys (`LSHBands.keys`), for near-duplicate detection."""
        if self.mode == "none":
            return None
        if digest in self.hashes:
            return "duplicate_exact"
        if self.tables and keys is not None:
            values = keys.tolist()
            if any(key in table for key, table in zip(values, self.tables, strict=True)):
                return "duplicate_near"
            for key, table in zip(values, self.tables, strict=True):
                table.add(key)
        self.hashes.add(digest)
        return None

    def add(self, digests: np.ndarray, keys: np.ndarray | None) -> None:
        """Restore state saved by a previous run (kept documents' hashes and band keys)."""
        self.hashes.update(digests.tolist())
        if self.tables and keys is not None:
            for table, column in zip(self.tables, keys.T.tolist(), strict=True):
                table.update(column)

"""Document cleaning and deduplication, with a reason for every document dropped or changed.

`Cleaner` runs the character-level rules (Unicode normalization, control characters, length, symbol ratio,
repeated lines, block list); `dup_ngram_fraction` and `MinHasher` work on token ids (vectorized n-gram hashing, so
they cost little next to tokenization); `Deduplicator` keeps exact hashes and a MinHash LSH index
(datasketch) across all sources.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.errors import InputError, MissingDependencyError

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


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """A well-mixed 64-bit hash of every n-gram of ``ids`` (the whole sequence when shorter than n)."""
    ids = np.asarray(ids, dtype=np.uint64)
    n = max(1, min(n, len(ids)))
    count = len(ids) - n + 1
    h = np.zeros(max(count, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(1_000_003) + ids[k : k + count] + np.uint64(1)
        h ^= h >> np.uint64(30)  # splitmix64 finalizer
        h *= _MIX1
        h ^= h >> np.uint64(27)
        h *= _MIX2
        h ^= h >> np.uint64(31)
    return h


def dup_ngram_fraction(ids: np.ndarray, n: int) -> float:
    """Share of the n-grams of ``ids`` that repeat an n-gram seen before in the same document."""
    if len(ids) <= n:
        return 0.0
    hashes = ngram_hashes(ids, n)
    return 1.0 - len(np.unique(hashes)) / len(hashes)


class MinHasher:
    """MinHash signatures from token-id shingles: ``num_perm`` multiply-shift hash functions."""

    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self.a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def signature(self, ids: np.ndarray) -> np.ndarray:
        # the minimum over repeated shingles is the same, so no np.unique (it costs more than it saves)
        shingles = ngram_hashes(ids, self.shingle) if len(ids) else np.zeros(1, np.uint64)
        sig = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        buffer = np.empty((self.num_perm, min(len(shingles), 2048)), dtype=np.uint64)
        a, b, shift = self.a[:, None], self.b[:, None], np.uint64(32)
        for start in range(0, len(shingles), buffer.shape[1]):
            block = shingles[start : start + buffer.shape[1]]
            values = buffer[:, : len(block)]
            np.multiply(a, block[None, :], out=values)  # in place: no temporaries (wrapping uint64)
            values += b
            values >>= shift
            np.minimum(sig, values.min(axis=1), out=sig)
        return sig


class Deduplicator:
    """Exact (hash) and near-duplicate (MinHash LSH, Jaccard >= threshold) detection across sources;
    ``check`` says why a document is a duplicate, or records it and returns None."""

    def __init__(self, mode: str, threshold: float = 0.8, num_perm: int = 128) -> None:
        self.mode = mode
        self.hashes: set[int] = set()
        self.lsh: Any = None
        self._keys = 0
        if mode == "near":
            try:
                from datasketch import MinHashLSH
            except ImportError:
                raise MissingDependencyError(
                    "near-duplicate removal needs datasketch: pip install 'knowlm[data]' (or --dedup exact)"
                ) from None
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)

    def _minhash(self, signature: np.ndarray) -> Any:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=1, hashvalues=signature, scheme="legacy")

    def check(self, digest: int, signature: np.ndarray | None) -> str | None:
        if self.mode == "none":
            return None
        if digest in self.hashes:
            return "duplicate_exact"
        if self.lsh is not None and signature is not None:
            minhash = self._minhash(signature)
            if self.lsh.query(minhash):
                return "duplicate_near"
            self.lsh.insert(self._keys, minhash, check_duplication=False)
            self._keys += 1
        self.hashes.add(digest)
        return None

    def add(self, digests: np.ndarray, signatures: np.ndarray | None) -> None:
        """Restore state saved by a previous run (kept documents' hashes and signatures)."""
        self.hashes.update(int(d) for d in digests)
        if self.lsh is not None and signatures is not None:
            for sig in signatures:
                self.lsh.insert(self._keys, self._minhash(sig), check_duplication=False)
                self._keys += 1

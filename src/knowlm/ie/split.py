"""Long documents: split on sentence boundaries (Chinese and English) into overlapping chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from knowlm.data.sentences import sentence_spans


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int
    """Offset of the chunk in the document."""


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of ``text`` with some non-space content (`knowlm.data.sentences`)."""
    return [(s, e) for s, e in sentence_spans(text) if text[s:e].strip()]


def chunk_text(
    text: str, max_tokens: int, count_tokens: Callable[[str], int], *, overlap: int = 1
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens``; consecutive chunks share ``overlap``
    sentences so that a fact spanning a boundary is seen whole. A sentence longer than the limit is cut
    into pieces by characters."""
    if count_tokens(text) <= max_tokens:
        return [Chunk(text, 0)]
    sentences: list[tuple[int, int]] = []
    for s, e in split_sentences(text):
        sentences.extend(_cut_long(text, s, e, max_tokens, count_tokens))
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and count_tokens(text[sentences[i][0] : sentences[j][1]]) <= max_tokens:
            j += 1
        start, end = sentences[i][0], sentences[j - 1][1]
        chunks.append(Chunk(text[start:end], start))
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    return chunks


def _cut_long(
    text: str, s: int, e: int, max_tokens: int, count: Callable[[str], int]
) -> list[tuple[int, int]]:
    if count(text[s:e]) <= max_tokens:
        return [(s, e)]
    pieces, start = [], s
    while start < e:
        lo, hi = start + 1, e  # the longest piece from `start` that fits (binary search)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        pieces.append((start, lo))
        start = lo
    return pieces

"""Pack a document's tokenized sentences greedily into training samples of whole sentences.

Greedy next-fit over the sentences in order gives the fewest samples for a document (no contiguous split
into fewer samples of at most ``capacity`` tokens exists) with every sample but the last as long as it can
be. A sentence longer than a sample is cut into ``capacity``-token pieces first (counted by the caller).

``extend_backward`` (KnowLM's variant) lets a sample that is not full reach back over the sentences before
it, so it starts earlier and fills up to ``capacity``: fewer padding tokens and no short tail sample, at
the cost of training on those earlier sentences twice.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_long(sentences: Sequence[list[int]], capacity: int) -> tuple[list[list[int]], int]:
    """Cut sentences longer than ``capacity`` tokens into pieces; returns (pieces, sentences cut)."""
    out: list[list[int]] = []
    cut = 0
    for ids in sentences:
        if len(ids) <= capacity:
            out.append(ids)
            continue
        cut += 1
        out.extend(ids[i : i + capacity] for i in range(0, len(ids), capacity))
    return out, cut


def pack(lengths: Sequence[int], capacity: int, *, extend_backward: bool = False) -> list[tuple[int, int]]:
    """Group sentences (given by their token counts, each <= ``capacity``) into samples.

    Returns half-open sentence ranges ``(start, end)``. Without ``extend_backward`` the ranges partition
    ``0..len(lengths)`` in order; with it a range may begin before the previous one ends.
    """
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    ranges: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, n in enumerate(lengths):
        if n > capacity:
            raise ValueError(f"sentence {i} has {n} tokens, more than the capacity {capacity}")
        if used + n > capacity and i > start:
            ranges.append((start, i))
            start, used = i, 0
        used += n
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    if extend_backward:
        extended = []
        for start, end in ranges:
            used = sum(lengths[start:end])
            while start > 0 and used + lengths[start - 1] <= capacity:
                start -= 1
                used += lengths[start]
            extended.append((start, end))
        ranges = extended
    return ranges


def chunk_document(
    sentences: Sequence[list[int]],
    seq_length: int,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    extend_backward: bool = False,
) -> tuple[list[list[int]], int]:
    """Token samples of at most ``seq_length`` for one document: each sample starts with ``bos_id`` and the
    document's last sample ends with ``eos_id`` (when given; the room for both is kept in every sample).
    Returns (samples, over-long sentences that were cut)."""
    capacity = seq_length - (bos_id is not None) - (eos_id is not None)
    if capacity < 1:
        raise ValueError(f"seq_length {seq_length} leaves no room for tokens after BOS/EOS")
    pieces, cut = split_long([s for s in sentences if s], capacity)
    ranges = pack([len(p) for p in pieces], capacity, extend_backward=extend_backward)
    samples = []
    for k, (start, end) in enumerate(ranges):
        ids = [] if bos_id is None else [bos_id]
        for piece in pieces[start:end]:
            ids.extend(piece)
        if eos_id is not None and k == len(ranges) - 1:
            ids.append(eos_id)
        samples.append(ids)
    return samples, cut

"""Sentence splitting (Chinese, English) and greedy packing of whole sentences into samples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowlm.data.chunk import chunk_document, pack, split_long
from knowlm.data.sentences import join_lines, split_sentences


def test_chinese_sentences():
    text = "北京是中国的首都。浙江大学位于杭州！你知道吗？当然；我知道……好的"
    assert split_sentences(text) == [
        "北京是中国的首都。",
        "浙江大学位于杭州！",
        "你知道吗？",
        "当然；",
        "我知道……",
        "好的",
    ]


def test_chinese_closing_quote_stays_with_the_sentence():
    assert split_sentences("他说：“你好。”然后走了。") == ["他说：“你好。”", "然后走了。"]


def test_english_sentences_and_abbreviations():
    text = 'Dr. Smith met Mr. Jones in the U.S. yesterday. They talked! "Why?" he asked. Done'
    # the space after a sentence starts the next one (BPE tokenizers attach it to the next word)
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones in the U.S. yesterday.",
        " They talked!",
        ' "Why?"',
        " he asked.",
        " Done",
    ]


def test_decimal_points_and_urls_do_not_end_sentences():
    text = "Pi is 3.14 and see example.com for more. Next one."
    assert split_sentences(text) == ["Pi is 3.14 and see example.com for more.", " Next one."]


def test_newlines_kept_or_joined():
    text = "first line\nsecond line。第三行\n第四行"
    assert split_sentences(text) == ["first line\n", "second line。", "第三行\n", "第四行"]
    assert join_lines("hard\nwrapped text\n  goes on") == "hard wrapped text goes on"
    assert join_lines("中文\n换行") == "中文换行"
    assert split_sentences("a wrapped\nline. Next.", keep_newlines=False) == ["a wrapped line.", " Next."]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab 。！？.!?…\n“”\"' 中文Mr", max_size=80))
def test_splitting_is_lossless(text):
    pieces = split_sentences(text)
    assert "".join(pieces) == text
    assert all(pieces)


def test_split_long_cuts_only_over_long_sentences():
    pieces, cut = split_long([[1, 2], [3, 4, 5, 6, 7], [8]], 2)
    assert pieces == [[1, 2], [3, 4], [5, 6], [7], [8]] and cut == 1


def test_pack_greedy_example():
    assert pack([3, 3, 3, 5, 1], 6) == [(0, 2), (2, 3), (3, 5)]
    # backward extension fills the short middle sample with the sentence before it
    assert pack([3, 3, 3, 5, 1], 6, extend_backward=True) == [(0, 2), (1, 3), (3, 5)]
    with pytest.raises(ValueError, match="more than the capacity"):
        pack([7], 6)


lengths_and_capacity = st.integers(1, 40).flatmap(
    lambda cap: st.tuples(st.lists(st.integers(1, cap), max_size=40), st.just(cap))
)


@settings(max_examples=300, deadline=None)
@given(lengths_and_capacity)
def test_pack_partitions_into_fewest_fullest_samples(case):
    lengths, capacity = case
    ranges = pack(lengths, capacity)
    # a partition of the sentences, in order
    assert [i for s, e in ranges for i in range(s, e)] == list(range(len(lengths)))
    assert all(e > s for s, e in ranges)
    sums = [sum(lengths[s:e]) for s, e in ranges]
    assert all(x <= capacity for x in sums)
    # as long as possible: the next sentence did not fit (so greedy next-fit, hence the fewest samples)
    for (_, e), used in zip(ranges[:-1], sums[:-1], strict=True):
        assert used + lengths[e] > capacity


@settings(max_examples=300, deadline=None)
@given(lengths_and_capacity)
def test_pack_backward_extension(case):
    lengths, capacity = case
    plain = pack(lengths, capacity)
    ranges = pack(lengths, capacity, extend_backward=True)
    assert [e for _, e in ranges] == [e for _, e in plain]  # same samples, only earlier starts
    for (s, e), (ps, _) in zip(ranges, plain, strict=True):
        assert s <= ps and sum(lengths[s:e]) <= capacity
        assert s == 0 or sum(lengths[s - 1 : e]) > capacity  # cannot reach back any further


sentences = st.lists(st.lists(st.integers(5, 999), max_size=30), max_size=25)


@settings(max_examples=300, deadline=None)
@given(sentences, st.integers(3, 40), st.booleans(), st.booleans())
def test_chunk_document_invariants(sents, seq_length, bos, eos):
    bos_id, eos_id = (1 if bos else None), (2 if eos else None)
    samples, cut = chunk_document(sents, seq_length, bos_id=bos_id, eos_id=eos_id)
    assert all(len(x) <= seq_length for x in samples)
    capacity = seq_length - bos - eos
    assert cut == sum(len(s) > capacity for s in sents)
    body = [x[1 if bos else 0 :] for x in samples]
    if eos and samples:
        assert body[-1][-1] == eos_id
        body[-1] = body[-1][:-1]
    stream = [t for s in sents for t in s]
    assert [t for x in body for t in x] == stream  # no token lost, none duplicated
    # whole sentences: every sample boundary is a sentence boundary (unless a sentence was cut)
    if not cut:
        boundaries = {0}
        for s in sents:
            boundaries.add(max(boundaries) + len(s))
        position = 0
        for x in body:
            position += len(x)
            assert position in boundaries
    if not stream:
        assert samples == []


@settings(max_examples=200, deadline=None)
@given(sentences, st.integers(3, 40))
def test_chunk_document_backward_extension_keeps_every_token(sents, seq_length):
    samples, _ = chunk_document(sents, seq_length, bos_id=1, extend_backward=True)
    assert all(len(x) <= seq_length and x[0] == 1 for x in samples)
    stream = [t for s in sents for t in s]
    # the same samples as without the option, each reaching back over earlier tokens (a contiguous
    # stretch of the document ending where the plain sample ends); together they cover the document
    plain, _ = chunk_document(sents, seq_length, bos_id=1)
    assert len(samples) == len(plain)
    end = 0
    for x, p in zip(samples, plain, strict=True):
        end += len(p) - 1
        assert len(x) >= len(p)
        assert x[1:] == stream[end - (len(x) - 1) : end]
    assert end == len(stream)


def test_seq_length_must_leave_room():
    with pytest.raises(ValueError, match="no room"):
        chunk_document([[5]], 2, bos_id=1, eos_id=2)

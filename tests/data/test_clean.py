"""Every cleaning rule, exact and near-duplicate detection."""

from __future__ import annotations

import numpy as np
import pytest

from knowlm.data.clean import (
    Cleaner,
    CleanRules,
    Deduplicator,
    LSHBands,
    MinHasher,
    dup_ngram_fractions,
    load_blocklist,
    lsh_bands,
    ngram_hashes,
    text_hash,
)
from knowlm.errors import InputError


def clean(text: str, **rules):
    return Cleaner(CleanRules(**rules)).clean(text)


def test_unicode_normalization():
    assert clean("Ｆｕｌｌ ｗｉｄｔｈ", normalize="NFKC") == ("Full width", None, ["unicode_normalized"])
    assert clean("cafe\u0301", normalize="NFC") == ("café", None, ["unicode_normalized"])
    assert clean("cafe\u0301", normalize="none") == ("cafe\u0301", None, [])


def test_control_characters_removed_but_tabs_and_newlines_kept():
    assert clean("a\x00b\u200bc\ufeff\td\ne") == ("abc\td\ne", None, ["control_chars_removed"])


def test_whitespace_trimmed():
    text, reason, changes = clean("  line one\r\n\n\n\nline two  \n")
    assert (text, reason, changes) == ("line one\n\nline two", None, ["whitespace_trimmed"])


def test_length_limits():
    assert clean("short", min_chars=10)[1] == "too_short"
    assert clean("   ", min_chars=1)[1] == "empty"
    assert clean("x" * 11, max_chars=10)[1] == "too_long"
    assert clean("x" * 10, min_chars=10, max_chars=10)[1] is None


def test_symbol_ratio():
    assert clean("■■■■ ★★★ ◆◆◆ text", max_symbol_ratio=0.3)[1] == "symbols"
    # ordinary punctuation (English and Chinese) is not a symbol
    assert clean("你好，世界！(Hello, world.) 100% - ok?", max_symbol_ratio=0.1)[1] is None


def test_repeated_lines():
    spam = "\n".join(["buy now"] * 8 + ["one real line", "another"])
    assert clean(spam, max_repeated_lines=0.3)[1] == "repeated_lines"
    assert clean("a\nb\nc\na", max_repeated_lines=0.3)[1] is None  # 1 of 4 lines repeats


def test_blocklist_is_case_insensitive(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# harmful phrases\nBad Phrase\n违禁词  # comment\n\n", encoding="utf-8")
    words = load_blocklist(path)
    assert words == ("Bad Phrase", "违禁词")
    assert clean("this has a bad phrase inside", blocklist=words)[1] == "blocklist"
    assert clean("这里有违禁词。", blocklist=words)[1] == "blocklist"
    assert clean("this is fine", blocklist=words)[1] is None
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="no phrases"):
        load_blocklist(tmp_path / "empty.txt")


def test_repeated_ngrams():
    rng = np.random.default_rng(0)
    varied = rng.integers(0, 1000, 200)
    looping = np.tile(np.arange(12), 20)
    docs = [varied, looping, np.arange(5), np.arange(10), np.zeros(0, dtype=np.int64), np.tile([1, 2], 6)]
    fractions = dup_ngram_fractions(np.concatenate(docs), [len(d) for d in docs], 10)
    assert fractions[0] == 0.0
    assert fractions[1] > 0.9  # 230 of 231 ten-grams repeat one of the first 12: 219 / 231
    assert fractions[1] == pytest.approx(1 - 12 / 231)
    assert fractions[2] == fractions[3] == fractions[4] == 0.0  # at most n tokens
    assert fractions[5] == pytest.approx(1 / 3)  # 3 ten-grams of 1,2,1,2...: the third repeats the first


def test_ngram_hashes_of_a_batch_equal_those_of_each_document():
    rng = np.random.default_rng(3)
    docs = [rng.integers(0, 50, int(n)) for n in (0, 3, 5, 17, 1, 40, 5, 0, 9)]
    hashes, offsets = ngram_hashes(np.concatenate(docs), [len(d) for d in docs], 5)
    assert list(np.diff(offsets)) == [0, 1, 1, 13, 1, 36, 1, 0, 5]
    for k, doc in enumerate(docs):
        alone, _ = ngram_hashes(doc, [len(doc)], 5)
        assert np.array_equal(hashes[offsets[k] : offsets[k + 1]], alone)
    # an n-gram hashes the same wherever it is; different n-grams differ
    same, _ = ngram_hashes(np.array([7, 8, 9, 1, 2, 7, 8, 9, 1, 2]), [10], 5)
    assert same[0] == same[5] and len(set(same.tolist())) == 5
    # a short document's one hash is that of its whole sequence: a prefix of a longer one differs
    assert ngram_hashes(np.array([7, 8]), [2], 5)[0][0] != ngram_hashes(np.array([7, 8, 9]), [3], 5)[0][0]


def test_minhash_signatures_of_a_batch_equal_those_of_each_document():
    rng = np.random.default_rng(4)
    hasher = MinHasher(32, 5)
    docs = [rng.integers(0, 1000, int(n)) for n in (300, 2, 0, 5000, 7, 64)]  # 5000 spans several blocks
    batch = hasher.signatures(np.concatenate(docs), [len(d) for d in docs])
    assert batch.shape == (6, 32)
    for k, doc in enumerate(docs):
        assert np.array_equal(batch[k], hasher.signatures(doc, [len(doc)])[0])
    # the definition: per hash function, the minimum over the document's shingles of (a*x + b) >> 32
    shingles, _ = ngram_hashes(docs[0], [300], 5)
    with np.errstate(over="ignore"):
        expected = ((hasher.a[:, None] * shingles[None, :] + hasher.b[:, None]) >> np.uint64(32)).min(axis=1)
    assert np.array_equal(batch[0], expected)
    assert (batch[2] == np.uint64(2**32 - 1)).all()  # empty document


def test_exact_dedup_folds_case_and_whitespace():
    assert text_hash("Hello   World\n") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello world!")
    dedup = Deduplicator("exact")
    assert dedup.check(text_hash("Hello World"), None) is None
    assert dedup.check(text_hash("hello  world"), None) == "duplicate_exact"
    assert Deduplicator("none").check(1, None) is None and Deduplicator("none").check(1, None) is None


def test_near_duplicates_found_and_distinct_documents_kept():
    rng = np.random.default_rng(1)
    hasher = MinHasher(128, 5)
    originals = [rng.integers(0, 30000, 400) for _ in range(60)]
    planted = {}
    for k in range(0, 60, 6):  # 10 near-copies (Jaccard of 5-gram shingles ~0.9): 3 tokens changed, 5 added
        copy = originals[k].copy()
        where = rng.choice(len(copy), 3, replace=False)
        copy[where] = rng.integers(0, 30000, 3)
        planted[k] = np.concatenate([copy, rng.integers(0, 30000, 5)])
    docs = originals + list(planted.values())
    signatures = hasher.signatures(np.concatenate(docs), [len(d) for d in docs])  # one batch
    keys = LSHBands(0.8, 128).keys(signatures)
    dedup = Deduplicator("near", threshold=0.8, num_perm=128)
    for i in range(len(originals)):
        assert dedup.check(i, keys[i]) is None, f"document {i} wrongly flagged"
    for j, k in enumerate(planted):
        assert dedup.check(1000 + k, keys[60 + j]) == "duplicate_near", f"copy of {k} missed"


def test_lsh_bands_separate_similar_from_dissimilar():
    for threshold, num_perm in ((0.8, 128), (0.5, 64), (0.9, 256)):
        bands, rows = lsh_bands(threshold, num_perm)
        assert bands * rows <= num_perm

        def collide(s: float, b: int = bands, r: int = rows) -> float:
            return 1 - (1 - s**r) ** b

        assert collide(threshold - 0.2) < 0.15 and collide(min(1.0, threshold + 0.1)) > 0.85
    assert lsh_bands(0.8, 128) == (9, 13)
    # band keys: equal bands give equal keys, one changed value changes only its band's key
    lsh = LSHBands(0.8, 128)
    sig = np.arange(128, dtype=np.uint64)[None, :].repeat(2, axis=0)
    sig[1, 20] += np.uint64(1)  # in band 1 (rows 13..25)
    keys = lsh.keys(sig)
    assert keys.shape == (2, 9)
    assert (keys[0] == keys[1]).tolist() == [True, False] + [True] * 7
    assert len(set(keys[0].tolist())) == 9


def test_dedup_state_restored_from_saved_hashes_and_band_keys():
    keys = LSHBands(0.8, 64).keys(MinHasher(64, 5).signatures(np.arange(300), [300]))
    other = LSHBands(0.8, 64).keys(MinHasher(64, 5).signatures(np.arange(1000, 1300), [300]))
    first = Deduplicator("near", num_perm=64)
    assert first.check(7, keys[0]) is None
    restored = Deduplicator("near", num_perm=64)
    restored.add(np.array([7], dtype=np.uint64), keys)
    assert restored.check(7, keys[0]) == "duplicate_exact"
    assert restored.check(8, keys[0]) == "duplicate_near"
    assert restored.check(9, other[0]) is None

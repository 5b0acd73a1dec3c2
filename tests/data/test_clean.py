"""Every cleaning rule, exact and near-duplicate detection."""

from __future__ import annotations

import numpy as np
import pytest

from knowlm.data.clean import (
    Cleaner,
    CleanRules,
    Deduplicator,
    MinHasher,
    dup_ngram_fraction,
    load_blocklist,
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
    assert dup_ngram_fraction(varied, 10) == 0.0
    assert dup_ngram_fraction(looping, 10) > 0.9
    assert dup_ngram_fraction(np.arange(5), 10) == 0.0  # shorter than n


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
    dedup = Deduplicator("near", threshold=0.8, num_perm=128)
    for i, ids in enumerate(originals):
        assert dedup.check(i, hasher.signature(ids)) is None, f"document {i} wrongly flagged"
    for k, ids in planted.items():
        assert dedup.check(1000 + k, hasher.signature(ids)) == "duplicate_near", f"copy of {k} missed"


def test_dedup_state_restored_from_saved_hashes_and_signatures():
    hasher = MinHasher(64, 5)
    ids = np.arange(300)
    first = Deduplicator("near", num_perm=64)
    assert first.check(7, hasher.signature(ids)) is None
    restored = Deduplicator("near", num_perm=64)
    restored.add(np.array([7], dtype=np.uint64), hasher.signature(ids)[None, :])
    assert restored.check(7, hasher.signature(ids)) == "duplicate_exact"
    assert restored.check(8, hasher.signature(ids)) == "duplicate_near"

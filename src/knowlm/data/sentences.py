"""Sentence splitting for Chinese and English text, lossless: the pieces join back to the input."""

from __future__ import annotations

import re

# A sentence ends at Chinese 。！？；… (and runs of them), or at . ! ? followed by whitespace; closing quotes
# and brackets, and line breaks after it, stay with the sentence. Whitespace after an English sentence starts the next one
# (BPE tokenizers attach a space to the word after it). Line breaks always end a sentence.
_END = re.compile(
    r"""(?=[。！？；!?….\n])"""  # a leading character class lets the regex engine skip ahead fast
    r"""(?:(?:[。！？；!?]+|…+|\.(?:\.\.)?)["'”’」』）)\]]*(?=\s|$)\n*"""  # punctuation, then space or the end
    r"""|[。！？；…]+["'”’」』）)\]]*\n*"""  # Chinese punctuation needs no space after it
    r"""|\n+)"""
)
# "Mr." or "e.g." are not ends of sentences
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|No|Fig|Inc|Ltd|Co|U\.S|e\.g|i\.e)|\b[A-Z])\.$"
)
_NEWLINES = re.compile(r"\s*\n\s*")
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def join_lines(text: str) -> str:
    """Undo hard line wrapping: line breaks become a space, or nothing between two Chinese characters."""

    def repl(m: re.Match[str]) -> str:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        return "" if _CJK.match(before) and _CJK.match(after) else " "

    return _NEWLINES.sub(repl, text)


def split_sentences(text: str, *, keep_newlines: bool = True) -> list[str]:
    """Split ``text`` into sentences. With ``keep_newlines`` (the default) ``"".join(result) == text`` and
    every line break ends a sentence; without it, lines are first joined (see `join_lines`)."""
    if not keep_newlines:
        text = join_lines(text)
    return [text[start:end] for start, end in sentence_spans(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``: consecutive, covering all of it."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end()
        if text[m.start()] == "." and _ABBREVIATION.search(text[max(start, end - 6) : end]):
            continue
        spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return spans

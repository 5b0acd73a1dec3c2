from knowlm.ie.split import chunk_text, split_sentences


def test_sentences_chinese_and_english():
    text = "浙江大学位于杭州。它创建于1897年！“真的吗？”他问。Berlin is big. Paris is old? Yes.\n新行"
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == [
        "浙江大学位于杭州。",
        "它创建于1897年！",
        "“真的吗？”",
        "他问。",
        "Berlin is big.",
        " Paris is old?",  # the space goes with the next word, as BPE tokenizers attach it
        " Yes.\n",
        "新行",
    ]
    assert "".join(sentences) == text


def test_decimal_points_do_not_split():
    assert len(split_sentences("Pi is 3.14 and e is 2.71.")) == 1


def test_short_text_is_one_chunk():
    assert [c.text for c in chunk_text("short.", 100, len)] == ["short."]


def test_chunks_keep_whole_sentences_with_overlap():
    text = "第一句话。第二句话。第三句话。第四句话。"
    chunks = chunk_text(text, 10, len, overlap=1)
    assert [c.text for c in chunks] == [
        "第一句话。第二句话。",
        "第二句话。第三句话。",
        "第三句话。第四句话。",
    ]
    assert all(text[c.start : c.start + len(c.text)] == c.text for c in chunks)


def test_overlong_sentence_is_cut_to_fit():
    text = "a" * 25 + "。"
    chunks = chunk_text(text, 10, len)
    assert all(len(c.text) <= 10 for c in chunks)
    assert "".join(c.text for c in chunks) == text

import json

import pytest

from knowlm.errors import InputError
from knowlm.prompts import AlpacaTemplate
from knowlm.train.data import IGNORE, load_examples, pack, split, tokenize
from tests.conftest import build_tokenizer

ALPACA = AlpacaTemplate()


def write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_alpaca_oneke_and_messages_formats(tmp_path):
    oneke = json.dumps({"instruction": "抽取", "schema": ["人物"], "input": "马云"}, ensure_ascii=False)
    rows = [
        {"instruction": "Name a city.", "output": "Berlin"},
        {"instruction": "Translate.", "input": "Hallo", "output": "Hello"},
        {"instruction": oneke, "output": '{"人物": ["马云"]}'},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    ]
    tokenizer = build_tokenizer()
    render = lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)  # noqa: E731
    examples = load_examples(write(tmp_path, rows), ALPACA, render_chat=render)
    assert examples[0].prompt == ALPACA.format("Name a city.") and examples[0].response == "Berlin"
    assert examples[1].prompt == ALPACA.format("Translate.", "Hallo")
    assert examples[2].prompt == ALPACA.format(oneke) and examples[2].response == '{"人物": ["马云"]}'
    assert examples[3].prompt.endswith("<|assistant|>\n") and examples[3].response == "hello"
    as_array = tmp_path / "data.json"
    as_array.write_text(json.dumps(rows[:2]))
    assert len(load_examples(as_array, ALPACA)) == 2


def test_bad_records_are_reported_with_line_numbers(tmp_path):
    rows = [
        {"instruction": "ok", "output": "x"},
        {"instruction": "no output"},
        {"output": "no instruction"},
        {"messages": [{"role": "user", "content": "hi"}]},
    ]
    path = write(tmp_path, rows)
    with pytest.raises(InputError) as info:
        load_examples(path, ALPACA)
    message = str(info.value)
    assert (
        "line 2: missing or empty 'output'" in message and "line 3: missing or empty 'instruction'" in message
    )
    assert "line 4: 'messages' must be a list" in message
    path.write_text('{"instruction": "a", "output": "b"}\n{broken\n')
    with pytest.raises(InputError, match="line 2: invalid JSON"):
        load_examples(path, ALPACA)
    with pytest.raises(InputError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl", ALPACA)


def test_masking_truncation_and_eos():
    tokenizer = build_tokenizer()
    from knowlm.train.data import Example

    examples = [Example(ALPACA.format("Say hi."), "Hello there", "x")]
    row = tokenize(examples, tokenizer, 512).rows[0]
    prompt_len = len(tokenizer(examples[0].prompt)["input_ids"])
    assert row["labels"][:prompt_len] == [IGNORE] * prompt_len
    assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
    assert row["input_ids"][-1] == tokenizer.eos_token_id
    with_inputs = tokenize(examples, tokenizer, 512, train_on_inputs=True).rows[0]
    assert with_inputs["labels"] == with_inputs["input_ids"]
    cut = tokenize(examples, tokenizer, prompt_len + 2)
    assert cut.truncated == 1 and len(cut.rows[0]["input_ids"]) == prompt_len + 2
    with pytest.raises(InputError, match="--cutoff-len 10 is shorter than the prompt of 1 example"):
        tokenize(examples, tokenizer, 10)


def test_packing_keeps_examples_apart_in_the_loss():
    rows = [
        {"input_ids": [1, 2, 3], "labels": [IGNORE, 2, 3]},
        {"input_ids": [1, 5], "labels": [IGNORE, 5]},
        {"input_ids": [1, 6, 7, 8], "labels": [IGNORE, IGNORE, 7, 8]},
    ]
    packed = pack(rows, 7)
    assert len(packed) == 2
    first = packed[0]
    assert first["input_ids"] == [1, 6, 7, 8, 1, 2, 3]
    assert first["position_ids"] == [0, 1, 2, 3, 0, 1, 2]
    # an example's first token is never a target, so nothing is learned across the boundary
    assert first["labels"] == [IGNORE, IGNORE, 7, 8, IGNORE, 2, 3]


def test_split_is_deterministic():
    items = list(range(20))
    from knowlm.train.data import Example

    examples = [Example(str(i), "r", str(i)) for i in items]
    a = split(examples, 0.2, seed=1)
    b = split(examples, 0.2, seed=1)
    assert [e.prompt for e in a[1]] == [e.prompt for e in b[1]] and len(a[1]) == 4 and len(a[0]) == 16
    assert split(examples, 0, seed=1) == (examples, [])
    assert len(split(examples, 3, seed=1)[1]) == 3

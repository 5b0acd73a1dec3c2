import json
import math

import pytest

from tests.cli.test_cli import _assert_one_line_error, run_cli


def tiny(tiny_model_dir, *extra):
    return [
        "--model",
        tiny_model_dir,
        "--engine",
        "transformers",
        "--device",
        "cpu",
        "--max-new-tokens",
        8,
        *extra,
    ]


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(
        json.dumps({"id": "a", "text": "马云在杭州创立了阿里巴巴。"}, ensure_ascii=False)
        + "\n"
        + "{not json\n"
        + json.dumps({"id": "c", "body": "no text field"})
        + "\n"
        + json.dumps({"id": "d", "text": "Tim Cook leads Apple in Cupertino."})
        + "\n"
        + json.dumps({"id": "e", "text": "Berlin is the capital of Germany."})
        + "\n"
    )
    return path


def test_extract_text_to_table(capsys, tiny_model_dir):
    code, out, _ = run_cli(
        capsys,
        "extract",
        "--task",
        "ner",
        "--schema",
        "person,location",
        "--text",
        "Tim Cook leads Apple.",
        *tiny(tiny_model_dir),
    )
    assert code == 0
    assert out.startswith("[0] Tim Cook leads Apple.")


def test_batch_extraction_writes_errors_and_resumes(capsys, tmp_path, tiny_model_dir, inputs):
    argv = ["extract", "--task", "re", "--schema", "founder,capital", "--input", inputs, "--batch-size", 2]
    full = tmp_path / "full.jsonl"
    code, _, err = run_cli(capsys, *argv, "--output", full, *tiny(tiny_model_dir))
    assert code == 2 and "2 of 5 input records were bad" in err
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", 2, "c", "d", "e"]
    assert "line 2: invalid JSON" in rows[1]["error"] and "no text in field 'text'" in rows[2]["error"]
    assert all("results" in rows[i] and "parse" in rows[i] for i in (0, 3, 4))

    # interrupted after two records, the third half-written: the rerun keeps the two and finishes the rest
    resumed = tmp_path / "resumed.jsonl"
    kept = dict(rows[0], results=[{"type": "marker", "text": "KEPT", "spans": [], "grounded": False}])
    partial = resumed.with_name("resumed.jsonl.partial")
    partial.write_text(
        json.dumps(kept, ensure_ascii=False) + "\n" + json.dumps(rows[1]) + "\n" + '{"id": "c", "err'
    )
    code, _, err = run_cli(capsys, *argv, "--output", resumed, *tiny(tiny_model_dir))
    assert "resuming: 2 of 5 records already done" in err
    again = [json.loads(line) for line in resumed.read_text().splitlines()]
    assert again[0]["results"][0]["text"] == "KEPT"  # not redone
    assert again[1:] == rows[1:]  # the rest is what an uninterrupted run gives
    assert not partial.exists()


@pytest.mark.parametrize(
    ("suffix", "check"),
    [
        (".csv", lambda text: text.startswith("id,kind,type,head,text")),
        (".json", lambda text: isinstance(json.loads(text), list)),
        (".nt", lambda text: all(line.endswith(" .") for line in text.splitlines())),
        (".graphml", lambda text: "<graphml" in text),
    ],
)
def test_export_formats_by_suffix(capsys, tmp_path, tiny_model_dir, suffix, check):
    out = tmp_path / f"out{suffix}"
    code, _, _ = run_cli(
        capsys,
        "extract",
        "--task",
        "re",
        "--schema",
        "founder",
        "--text",
        "Jobs founded Apple.",
        "--output",
        out,
        *tiny(tiny_model_dir),
    )
    assert code == 0 and check(out.read_text())
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--task", "sentiment", "--schema", "x"], "unknown task 'sentiment'"),
        (["--task", "ner", "--schema", ""], "no schema"),
        (["--task", "ner", "--schema", "a,a"], "duplicate schema items"),
        (["--task", "ner"], "no schema"),
    ],
)
def test_bad_extraction_settings(capsys, argv, needle):
    code, _, err = run_cli(capsys, "extract", "--text", "x", "--model", "./missing", *argv)
    _assert_one_line_error(code, err, needle)


def test_malformed_schema_file(capsys, tmp_path):
    bad = tmp_path / "schema.json"
    bad.write_text('["person",')
    code, _, err = run_cli(
        capsys, "extract", "--text", "x", "--task", "ner", "--schema-file", bad, "--model", "./m"
    )
    _assert_one_line_error(code, err, "schema.json line 1: invalid JSON")


def test_eval_scores_a_gold_file(capsys, tmp_path):
    instruction = json.dumps(
        {"instruction": "x", "schema": ["人物", "地点"], "input": "马云在杭州。"}, ensure_ascii=False
    )
    line = {
        "id": 1,
        "task": "NER",
        "instruction": instruction,
        "label": json.dumps(
            [{"entity": "马云", "entity_type": "人物"}, {"entity": "杭州", "entity_type": "地点"}],
            ensure_ascii=False,
        ),
        "output": '{"人物": ["马云"], "地点": ["北京"]}',
    }
    gold = tmp_path / "dev.json"
    gold.write_text(json.dumps(line, ensure_ascii=False) + "\n")
    report_path = tmp_path / "report.json"
    code, out, _ = run_cli(capsys, "eval", "--gold", gold, "--report", report_path)
    assert code == 0 and "[entity]" in out
    report = json.loads(report_path.read_text())
    assert (report["precision"], report["recall"], report["f1"]) == (0.5, 0.5, 0.5)


def test_eval_runs_a_model_on_data(capsys, tmp_path, tiny_model_dir):
    instruction = json.dumps({"instruction": "x", "schema": ["founder"], "input": "Jobs founded Apple."})
    rows = [{"id": i, "task": "RE", "instruction": instruction, "label": "[]"} for i in range(3)]
    data = tmp_path / "dev.json"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = tmp_path / "answers.jsonl"
    code, _, _ = run_cli(capsys, "eval", "--data", data, "--output", answers, "--json", *tiny(tiny_model_dir))
    assert code == 0
    assert len(answers.read_text().splitlines()) == 3
    code, out, _ = run_cli(capsys, "eval", "--gold", data, "--pred", answers, "--json")
    assert code == 0 and json.loads(out)["outputs"] == 3
    saved = [json.loads(line) for line in answers.read_text().splitlines()]
    assert all("".join(p for p, _ in r["logprobs"]).startswith(r["output"]) for r in saved)
    # decoded as knowlm extract decodes, constrained to the answer's JSON by default; free on request
    shaped = '{"founder": ['  # 8 new tokens of the tiny model's tokenizer may not reach the end of it

    def constrained(output: str) -> bool:
        return bool(output) and (output.startswith(shaped) or shaped.startswith(output))

    assert all(constrained(r["output"]) for r in saved), [r["output"] for r in saved]
    free = tmp_path / "free.jsonl"
    argv = ["eval", "--data", data, "--output", free, "--no-constrained", "--json", *tiny(tiny_model_dir)]
    assert run_cli(capsys, *argv)[0] == 0
    assert not any(
        json.loads(line)["output"].startswith('{"founder"') for line in free.read_text().splitlines()
    )


def test_eval_min_confidence_scores_only_the_sure_items(capsys, tmp_path):
    text = "Jobs founded Apple. Woz met Apple."
    instruction = json.dumps({"instruction": "x", "schema": ["founder"], "input": text})
    label = json.dumps([{"head": "Jobs", "relation": "founder", "tail": "Apple"}])
    gold = tmp_path / "dev.json"
    gold.write_text(json.dumps({"id": 1, "task": "RE", "instruction": instruction, "label": label}) + "\n")
    sure, unsure = 0.9, 0.2
    answer = '{"founder": [{"head": "Jobs", "tail": "Apple"}, {"head": "Woz", "tail": "Apple"}]}'
    split = answer.index("Woz") - 4  # the second triple's tokens start after the first one's last string
    logprobs = [[answer[:split], math.log(sure)], [answer[split:], math.log(unsure)]]
    pred = tmp_path / "answers.jsonl"
    pred.write_text(json.dumps({"id": 1, "output": answer, "logprobs": logprobs}) + "\n")
    code, out, _ = run_cli(capsys, "eval", "--gold", gold, "--pred", pred, "--json")
    report = json.loads(out)
    assert code == 0 and report["precision"] == 0.5 and report["calibration"]["items"] == 2
    code, out, _ = run_cli(
        capsys, "eval", "--gold", gold, "--pred", pred, "--json", "--min-confidence", "0.5"
    )
    assert code == 0 and (json.loads(out)["precision"], json.loads(out)["recall"]) == (1.0, 1.0)
    code, _, err = run_cli(capsys, "eval", "--gold", gold, "--pred", pred, "--min-confidence", "2")
    _assert_one_line_error(code, err, "--min-confidence")
    pred.write_text(json.dumps({"id": 1, "output": answer, "logprobs": [["x"]]}) + "\n")
    code, _, err = run_cli(capsys, "eval", "--gold", gold, "--pred", pred)
    _assert_one_line_error(code, err, "line 1: 'logprobs' must be")


def test_eval_needs_gold_or_data(capsys):
    code, _, err = run_cli(capsys, "eval")
    _assert_one_line_error(code, err, "--gold FILE")


def test_eval_few_shot_and_limit(capsys, tmp_path, tiny_model_dir, monkeypatch):
    from knowlm.prompts.templates import RawTemplate

    def record(i: int, text: str, task: str = "NER") -> dict:
        body = {"instruction": "find", "schema": ["person"], "input": text}
        return {"id": i, "task": task, "instruction": json.dumps(body), "output": '{"person": []}'}

    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(record(i, f"Text {i}.")) + "\n" for i in range(4)))
    examples = tmp_path / "train.jsonl"
    rows = [record(9, "Example one."), record(8, "Example two."), record(7, "另一个例子。")]
    examples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    prompts = []
    original = RawTemplate.format
    monkeypatch.setattr(
        RawTemplate,
        "format",
        lambda self, q, i=None, shots=(): prompts.append(shots) or original(self, q, i, shots),
    )
    argv = ["eval", "--data", data, "--json", "--template", "raw", "--limit", "2", *tiny(tiny_model_dir)]
    code, out, _ = run_cli(capsys, *argv, "--few-shot", "1", "--few-shot-from", examples)
    assert code == 0 and json.loads(out)["documents"] == 2
    assert [len(s) for s in prompts] == [1, 1]  # one English example each, never the Chinese one
    assert "Example one." in prompts[0][0][0]
    code, _, err = run_cli(capsys, "eval", "--data", data, "--few-shot", "2", *tiny(tiny_model_dir))
    _assert_one_line_error(code, err, "--few-shot-from")

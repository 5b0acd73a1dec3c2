import io
import json
import subprocess
import sys

import pytest

from knowlm.cli.main import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tiny(tiny_model_dir, *extra):
    return ["--model", tiny_model_dir, "--engine", "transformers", *extra]


def test_generate_prints_the_completion(capsys, tiny_model_dir, tiny_engine):
    from knowlm.config import SamplingParams

    code, out, _ = run_cli(capsys, "generate", "Berlin is", *tiny(tiny_model_dir, "--max-new-tokens", 6))
    assert code == 0
    expected = tiny_engine.generate(["Berlin is"], SamplingParams(max_new_tokens=6))[0].text
    assert out == expected + "\n"


def test_generate_jsonl_with_templates(capsys, tmp_path, tiny_model_dir):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"instruction": "Name a city.", "id": 1})
        + "\n\n"
        + json.dumps({"instruction": "Extract entities.", "input": "Berlin is in Germany.", "id": 2})
        + "\n"
    )
    out_file = tmp_path / "out.jsonl"
    argv = ["generate", "--input", src, "--output", out_file, "--template", "alpaca", "--max-new-tokens", 4]
    code, _, err = run_cli(capsys, *argv, *tiny(tiny_model_dir))
    assert code == 0 and "wrote 2 results" in err
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert all({"output", "prompt_tokens", "completion_tokens", "finish_reason"} <= set(r) for r in rows)
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"]  # the input is in the prompt
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_generate_resumes_after_interruption(capsys, tmp_path, tiny_model_dir):
    src = tmp_path / "in.txt"
    src.write_text("Berlin is\nParis is\nApple was\n")
    out_file = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    partial.write_text(json.dumps({"prompt": "Berlin is", "output": "KEPT"}) + "\n" + '{"prompt": "Par')
    code, _, _ = run_cli(
        capsys, "generate", "-i", src, "-o", out_file, "--max-new-tokens", 3, *tiny(tiny_model_dir)
    )
    assert code == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Berlin is", "Paris is", "Apple was"]
    assert rows[0]["output"] == "KEPT"  # finished work is not redone
    assert not partial.exists()


def test_generate_streams(capsys, tiny_model_dir, tiny_engine):
    from knowlm.config import SamplingParams

    code, out, _ = run_cli(
        capsys, "generate", "--stream", "北京是", *tiny(tiny_model_dir, "--max-new-tokens", 8)
    )
    assert code == 0
    assert out == tiny_engine.generate(["北京是"], SamplingParams(max_new_tokens=8))[0].text + "\n"


def _assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [
        line for line in err.strip().splitlines() if line.strip() and "it/s]" not in line
    ]  # progress bars aside
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_unknown_model_path(capsys):
    code, _, err = run_cli(capsys, "generate", "hi", "--model", "./no/such/model")
    _assert_one_line_error(code, err, "no such file or directory")


def test_corrupt_gguf(capsys, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"\x00" * 128)
    code, _, err = run_cli(capsys, "generate", "hi", "--model", bad, "--engine", "transformers")
    _assert_one_line_error(code, err, "not a GGUF file")


def test_adapter_for_another_base(capsys, tmp_path, tiny_adapter_dir):
    from tests.conftest import save_model

    other = save_model(tmp_path / "other", hidden_size=96)
    code, _, err = run_cli(capsys, "generate", "hi", *tiny(other, "--adapter", tiny_adapter_dir))
    _assert_one_line_error(code, err, "does not fit", "size mismatch")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--temperature", "-0.5"], "temperature must be >= 0"),
        (["--top-p", "1.5"], "top_p must be > 0 and <= 1"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
    ],
)
def test_invalid_decoding_values(capsys, flags, needle):
    # checked before any model is loaded: the model path does not even exist
    code, _, err = run_cli(capsys, "generate", "hi", "--model", "./missing", *flags)
    _assert_one_line_error(code, err, needle)


def test_bad_jsonl_line_is_named(capsys, tmp_path, tiny_model_dir):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "ok"}\n{"prompt": broken}\n')
    code, _, err = run_cli(capsys, "generate", "-i", src, *tiny(tiny_model_dir))
    _assert_one_line_error(code, err, "line 2", "invalid JSON")
    src.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    code, _, err = run_cli(capsys, "generate", "-i", src, *tiny(tiny_model_dir))
    _assert_one_line_error(code, err, "line 2", "'prompt' or 'instruction'")


def test_no_prompts(capsys):
    code, _, err = run_cli(capsys, "generate")
    _assert_one_line_error(code, err, "no prompts")


def test_argparse_rejects_non_numbers(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "hi", "--temperature", "hot"])
    assert info.value.code == 2


def test_chat_keeps_history_and_commands(capsys, monkeypatch, tiny_model_dir):
    from knowlm.cli import chat

    prompts = []
    real = chat.conversation_prompt

    def spy(engine, messages):
        prompts.append([dict(m) for m in messages])
        return real(engine, messages)

    monkeypatch.setattr(chat, "conversation_prompt", spy)
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("Hello\nAnd then?\n/params temperature=0.5 top-k=3\n/reset\nHi\n")
    )
    code, out, _ = run_cli(
        capsys, "chat", "--system", "Be brief.", *tiny(tiny_model_dir, "--max-new-tokens", 4)
    )
    assert code == 0
    assert [len(p) for p in prompts] == [2, 4, 2]  # history grows, /reset clears it (system kept)
    assert prompts[1][2]["role"] == "assistant" and prompts[1][3]["content"] == "And then?"
    assert "temperature=0.5" in out and "top_k=3" in out and "(conversation cleared)" in out


def test_chat_params_reject_bad_values(capsys):
    from knowlm.cli.chat import set_params
    from knowlm.config import SamplingParams
    from knowlm.errors import InputError

    with pytest.raises(InputError, match="top_p"):
        set_params(SamplingParams(), ["top_p=3"])
    with pytest.raises(InputError, match="NAME=VALUE"):
        set_params(SamplingParams(), ["colour=blue"])
    assert set_params(SamplingParams(), ["stop=a,b", "seed=3"]).stop == ["a", "b"]


def test_models_reports_the_cache(capsys, knowlm_cache):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert str(knowlm_cache) in out and "not built yet" in out and "transformers  available" in out


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "knowlm.cli.main", "generate", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--max-new-tokens" in result.stdout and "greedy" in result.stdout

"""End-to-end: the embedded default model (Gemma 3 270M) through each CPU engine. Slow, runs in CI."""

import subprocess
import sys

import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.llamacpp import is_llamacpp_available

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def default_engine():
    from knowlm.engines import create_engine

    return create_engine(ModelConfig(model="default", engine="transformers"))


def test_transformers_engine_generates_text(default_engine):
    assert default_engine.model_name == "default"  # not the cache path of the files behind it
    (done,) = default_engine.generate([PROMPT], SamplingParams(max_new_tokens=12))
    assert done.completion_tokens >= 3
    assert sum(ch.isalpha() for ch in done.text) >= 5, done.text
    assert "".join(default_engine.stream(PROMPT, SamplingParams(max_new_tokens=12))) == done.text


def test_default_model_has_a_gemma_chat_template(default_engine):
    prompt = default_engine.render_chat([{"role": "user", "content": "Hi"}])
    assert prompt == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    eos = default_engine.model.generation_config.eos_token_id
    assert default_engine.tokenizer.convert_tokens_to_ids("<end_of_turn>") in eos


def test_default_model_batches(default_engine):
    prompts = [PROMPT, "Zhejiang University is located in", "北京是中国的"]
    params = SamplingParams(max_new_tokens=8)
    batched = default_engine.generate(prompts, params)
    assert all(c.completion_tokens > 0 and c.text.strip() for c in batched)


@pytest.mark.requires_llamacpp
@pytest.mark.skipif(
    not is_llamacpp_available(), reason="llama-cpp-python is not installed (make install-llamacpp)"
)
def test_llamacpp_engine_decodes_without_crashing():
    # in a child process: a native crash (e.g. a bad CPU build) must fail this test, not kill pytest
    cmd = [
        sys.executable,
        "-m",
        "knowlm.cli.main",
        "generate",
        "--engine",
        "llamacpp",
        "--model",
        "default",
        "--max-new-tokens",
        "16",
        "--jsonl",
        PROMPT,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode >= 0, (
        f"llama.cpp crashed with signal {-result.returncode}: {result.stderr[-2000:]}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["completion_tokens"] >= 3 and sum(ch.isalpha() for ch in row["output"]) >= 5, row

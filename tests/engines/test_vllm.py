"""The vLLM engine; opt-in (`make test-vllm`), as vLLM is a large separate install."""

import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.vllm import is_vllm_available
from knowlm.errors import MissingDependencyError

requires_vllm = pytest.mark.skipif(not is_vllm_available(), reason="vLLM is not installed (make test-vllm)")


def test_missing_vllm_is_a_clear_error():
    if is_vllm_available():
        pytest.skip("vLLM is installed")
    from knowlm.engines import create_engine

    with pytest.raises(MissingDependencyError, match="pip install"):
        create_engine(ModelConfig(engine="vllm"))


@pytest.mark.requires_vllm
@requires_vllm
def test_vllm_generates_like_the_protocol_says(tiny_model_dir):
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(tiny_model_dir), engine="vllm", dtype="float32", n_ctx=256))
    params = SamplingParams(max_new_tokens=8)
    done = engine.generate(["Berlin is the capital of", "北京是"], params)
    assert len(done) == 2 and all(c.completion_tokens >= 1 for c in done)
    assert "".join(engine.stream("Berlin is the capital of", params)) == done[0].text

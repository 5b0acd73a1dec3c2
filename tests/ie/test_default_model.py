"""Extraction end to end with the embedded default model (slow; runs in CI)."""

import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.ie.extractor import Extractor

pytestmark = pytest.mark.slow


def test_constrained_ner_with_the_default_model():
    extractor = Extractor(
        "default",
        "ner",
        "人物,地点",
        constrained=True,
        params=SamplingParams(max_new_tokens=32),
        model_config=ModelConfig(engine="transformers"),
    )
    result = extractor.extract("马云在杭州创立了阿里巴巴。")
    assert result.outputs[0].startswith("{")  # the grammar forces a JSON object keyed by the schema
    assert result.entities and {e.type for e in result.entities} <= {"人物", "地点"}
    assert any(e.grounded and e.spans for e in result.entities)

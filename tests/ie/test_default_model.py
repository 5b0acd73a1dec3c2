"""Extraction end to end with the embedded default model (slow; runs in CI)."""

import json

import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.llamacpp import is_llamacpp_available
from knowlm.ie.extractor import Extractor

pytestmark = pytest.mark.slow


def test_constrained_ner_with_the_default_model():
    extractor = Extractor(
        "default",
        "ner",
        "人物,地点",
        params=SamplingParams(max_new_tokens=32),
        model_config=ModelConfig(engine="transformers", no_adapter=True),  # the grammar on the base model
    )
    result = extractor.extract("马云在杭州创立了阿里巴巴。")
    assert result.outputs[0].startswith("{")  # the grammar forces a JSON object keyed by the schema
    assert result.entities and {e.type for e in result.entities} <= {"人物", "地点"}
    assert any(e.grounded and e.spans for e in result.entities)


@pytest.mark.requires_llamacpp
@pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed")
def test_shipped_adapter_makes_default_answer_in_the_schema_without_constraints():
    from knowlm.engines import create_engine
    from knowlm.models.default import default_adapter

    assert default_adapter() is not None, "the IE adapter must ship inside the package"
    text = "马云在杭州创立了阿里巴巴集团。"
    tuned = Extractor(
        create_engine(ModelConfig(model="default", engine="llamacpp")),
        "ner",
        "人物,地点,组织机构",
        constrained=False,
    )
    result = tuned.extract(text)
    assert result.parsed and json.loads(result.outputs[0]).keys() == {"人物", "地点", "组织机构"}
    assert result.entities and all(e.grounded for e in result.entities)
    base = create_engine(ModelConfig(model="default", engine="llamacpp", no_adapter=True))
    free = Extractor(base, "ner", "人物,地点,组织机构", constrained=False)
    assert not free.extract(text).parsed  # the base model echoes


@pytest.mark.requires_llamacpp
@pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed")
@pytest.mark.parametrize(
    ("schema", "text", "triple"),
    [
        ("收购,持股", "腾讯收购了搜狗。", ("腾讯", "收购", "搜狗")),
        ("work for,organization based in", "John Smith works for IBM.", ("John Smith", "work for", "IBM")),
    ],
)
def test_shipped_adapter_extracts_an_obvious_triple(schema: str, text: str, triple: tuple[str, str, str]):
    """Relations of the kinds the adapter was trained on (FinRE in Chinese, CoNLL04 in English)."""
    result = Extractor("default", "re", schema).extract(text)
    assert triple in [t.key() for t in result.triples], result.outputs
    assert all(t.grounded for t in result.triples)


@pytest.mark.requires_llamacpp
@pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed")
def test_make_demo_finds_the_entities_and_every_triple():
    """What `make demo` prints (the same options as its commands, no expert settings): every entity and
    both triples per text, each with a confidence."""
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model="default"))

    def entities(schema: str, text: str) -> set[tuple[str, str]]:
        result = Extractor(engine, "ner", schema).extract(text)
        return {(e.type, e.text) for e in result.entities}

    def triples(schema: str, text: str) -> set[tuple[str, str, str]]:
        result = Extractor(engine, "re", schema).extract(text)
        assert all(t.confidence is not None and 0 < t.confidence <= 1 for t in result.triples)
        return {t.key() for t in result.triples}

    zh = "马云在杭州创立了阿里巴巴集团。"
    en = "Steve Jobs founded Apple, which is headquartered in Cupertino."
    assert {("人物", "马云"), ("地点", "杭州"), ("公司", "阿里巴巴集团")} <= entities("人物,地点,公司", zh)
    found = entities("person,organization,location", "Tim Cook leads Apple from Cupertino, California.")
    assert {("person", "Tim Cook"), ("location", "Cupertino"), ("location", "California")} <= found
    expected_zh = {("马云", "创始人", "阿里巴巴集团"), ("阿里巴巴集团", "总部位于", "杭州")}
    assert expected_zh <= triples("创始人,总部位于", zh)
    expected_en = {("Steve Jobs", "founder", "Apple"), ("Apple", "headquartered_in", "Cupertino")}
    assert expected_en <= triples("founder,headquartered_in", en)


@pytest.mark.requires_llamacpp
@pytest.mark.skipif(not is_llamacpp_available(), reason="llama-cpp-python is not installed")
def test_default_model_answers_the_same_with_many_sequences_in_flight():
    """Multi-sequence decoding (8 in flight) gives the greedy answers of one sequence at a time, and the
    same answers on every run (one caller's prompts are queued at once, so its batches are composed alike)."""
    from knowlm.engines import create_engine

    texts = [
        "马云在杭州创立了阿里巴巴集团。",
        "Tim Cook leads Apple from Cupertino, California.",
        "Steve Jobs founded Apple, which is headquartered in Cupertino.",
        "腾讯收购了搜狗。",
        "John Smith works for IBM in New York.",
        "北京大学位于北京市海淀区。",
    ]
    answers = []
    for batch_size in (1, 8, 8):
        engine = create_engine(ModelConfig(model="default", engine="llamacpp", batch_size=batch_size))
        extractor = Extractor(engine, "re", "founder,headquartered_in,work for,收购")
        answers.append([r.outputs for r in extractor.extract_many(texts)])
        engine.close()
    assert answers[0] == answers[1] == answers[2]

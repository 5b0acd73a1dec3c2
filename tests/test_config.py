import pytest

from knowlm.config import ModelConfig, SamplingParams
from knowlm.errors import InputError


def test_defaults_are_valid():
    assert SamplingParams().validate().greedy
    ModelConfig().validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"top_p": 1.5}, "top_p must be > 0 and <= 1, got 1.5"),
        ({"top_p": 0.0}, "top_p must be > 0 and <= 1, got 0.0"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"num_beams": 0}, "num_beams must be >= 1"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
        ({"stop": [""]}, "stop strings must not be empty"),
    ],
)
def test_invalid_sampling_values_name_the_field(changes, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SamplingParams(**changes).validate()


def test_all_problems_are_reported_together():
    with pytest.raises(InputError) as info:
        SamplingParams(temperature=-1, top_p=2).validate()
    assert "temperature" in str(info.value) and "top_p" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float8"}, "--dtype"),
        ({"device": "tpu"}, "--device"),
        ({"load_in_8bit": True, "load_in_4bit": True}, "exclude each other"),
        ({"engine": "llama.cpp"}, "--engine"),
        ({"batch_size": 0}, "--batch-size"),
    ],
)
def test_invalid_model_settings(changes, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**changes).validate()


def test_trust_remote_code_is_off_by_default():
    assert ModelConfig().trust_remote_code is False


def test_a_setting_defined_once_appears_in_the_cli_the_api_and_the_web_with_its_bounds():
    """A new field of ExtractConfig (or SamplingParams) becomes a CLI flag, an API field and a web control,
    with the same default, bounds and help, and is validated the same everywhere."""
    import argparse
    import dataclasses

    from pydantic import ValidationError

    from knowlm.cli.args import add_dataclass_args
    from knowlm.config import ExtractConfig, _opt, bound_problems
    from knowlm.serve.protocol import ExtractOptions, GenerateParameters, api_model
    from knowlm.web.app import EXTRACT_FIELDS, SAMPLING_FIELDS, web_fields

    @dataclasses.dataclass
    class Extended(ExtractConfig):
        min_confidence: float = _opt(0.0, "drop items less sure than this", ge=0, le=1)

    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, Extended)
    assert parser.parse_args(["--min-confidence", "0.5"]).min_confidence == 0.5
    model = api_model(Extended, exclude=("task", "schema"))
    assert model().min_confidence == 0.0  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        model(min_confidence=2)
    assert "min_confidence" in [f.name for f in web_fields(Extended)]
    assert bound_problems(Extended(min_confidence=2)) == ["min_confidence must be >= 0 and <= 1, got 2"]
    # the shipped settings: every field a caller may set is in all three, grounding included
    settable = [f.name for f in dataclasses.fields(ExtractConfig) if f.metadata.get("api") is not False]
    assert list(ExtractOptions.model_fields) == [n for n in settable if n not in ("task", "schema")]
    assert [f.name for f in EXTRACT_FIELDS] == list(ExtractOptions.model_fields)
    assert "grounded" in ExtractOptions.model_fields
    sampling = ["temperature", "top_p", "top_k", "num_beams", "repetition_penalty"]
    assert [f.name for f in SAMPLING_FIELDS] == ["max_new_tokens", *sampling]
    assert list(GenerateParameters.model_fields) == ["max_tokens", *sampling, "stop", "seed"]
    assert GenerateParameters(max_tokens=3).to_sampling_params().max_new_tokens == 3

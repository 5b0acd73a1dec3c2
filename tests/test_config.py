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
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"num_beams": 0}, "num_beams must be at least 1"),
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
        ({"engine": "onnx"}, "--engine"),
        ({"batch_size": 0}, "--batch-size"),
    ],
)
def test_invalid_model_settings(changes, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**changes).validate()


def test_trust_remote_code_is_off_by_default():
    assert ModelConfig().trust_remote_code is False

"""IE instruction texts travel with a model (directory file, GGUF metadata, merged adapters); users can give
their own or take them from their OneKE records; the built-in texts stay the fallback."""

import json
import shutil
from pathlib import Path

import pytest

from knowlm.config import ModelConfig
from knowlm.engines.llamacpp import is_llamacpp_available
from knowlm.errors import InputError
from knowlm.ie.extractor import Extractor
from knowlm.ie.instructions import FILE_NAME, instructions_from_records, load_instructions
from knowlm.ie.tasks import get_task

# texts with characters JSON escapes or folds, to check they arrive byte for byte
OWN = {
    "oneke": {
        "ner": {
            "zh": '抽取实体："引号"、全角ＡＢＣ、换行\n之后',
            "en": "Extract  entities\t(exactly these words).",
        },
        "re": {"en": "Relations, please."},
        "ee": {"zh": "事件抽取。" * 400},  # longer than llama-cpp-python's first metadata buffer
    },
    "knowlm-tuple": {"re": {"en": "Find {schema} now."}},
}
TEXT_EN, TEXT_ZH = "Steve Jobs founded Apple.", "马云创立了阿里巴巴。"


def instruction_of(extractor: Extractor, text: str) -> str:
    (_, prompt, _), *_ = extractor.prompts_for(text)
    return json.loads(prompt)["instruction"]


@pytest.fixture(scope="module")
def own_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("own-texts") / "model"
    shutil.copytree(tiny_model_dir, directory)
    (directory / FILE_NAME).write_text(json.dumps(OWN, ensure_ascii=False), encoding="utf-8")
    return directory


def test_a_model_directory_with_its_own_texts_gets_exactly_those(own_model: Path, tiny_model_dir: Path):
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(own_model), engine="transformers"))
    ner = Extractor(engine, "ner", "person,organization", template="raw")
    assert instruction_of(ner, TEXT_ZH) == OWN["oneke"]["ner"]["zh"]
    assert instruction_of(ner, TEXT_EN) == OWN["oneke"]["ner"]["en"]
    assert json.dumps(OWN["oneke"]["ner"]["en"])[1:-1] in ner.prompts_for(TEXT_EN)[0][1]  # the bytes as sent
    re_zh = Extractor(engine, "re", "创始人", template="raw")  # no zh text given: the built-in one
    assert instruction_of(re_zh, TEXT_ZH) == get_task("re").instructions["zh"]
    tuple_prompt = Extractor(engine, "re", "founder", template="raw", prompt_format="knowlm-tuple")
    assert tuple_prompt.prompts_for(TEXT_EN)[0][1].startswith("Find founder now.")
    plain = create_engine(ModelConfig(model=str(tiny_model_dir), engine="transformers"))
    assert (
        instruction_of(Extractor(plain, "ner", "person", template="raw"), TEXT_EN)
        == (get_task("ner").instructions["en"])
    )


def test_user_texts_override_the_models(own_model: Path, tmp_path: Path):
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(own_model), engine="transformers"))
    mine = tmp_path / "mine.yaml"
    mine.write_text("oneke:\n  ner:\n    en: My own words.\n", encoding="utf-8")
    extractor = Extractor(engine, "ner", "person", template="raw", instructions=str(mine))
    assert instruction_of(extractor, TEXT_EN) == "My own words."
    records = tmp_path / "records.jsonl"
    rows = [("Say A.", TEXT_EN), ("Say A.", "Tim Cook runs Apple."), ("Say B.", "Berlin is big.")]
    lines = []
    for instruction, text in rows:
        body = {"instruction": instruction, "schema": ["person"], "input": text}
        lines.append(json.dumps({"task": "NER", "instruction": json.dumps(body), "output": "{}"}) + "\n")
    records.write_text("".join(lines), encoding="utf-8")
    assert instructions_from_records(records) == {"oneke": {"ner": {"en": "Say A."}}}  # the most frequent
    extractor = Extractor(engine, "ner", "person", template="raw", instructions_from=str(records))
    assert instruction_of(extractor, TEXT_EN) == "Say A."


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"oneke": {"ner": {"fr": "x"}}}', "oneke.ner must map zh and/or en"),
        ('{"nope": {}}', "unknown prompt format 'nope'"),
        ('{"knowlm-tuple": {"re": {"en": "no placeholder"}}}', "{schema} placeholder"),
        ('{"oneke": {"ner": {"en": ""}}}', "oneke.ner.en must be a non-empty string"),
        ("{not json", "not valid json"),
    ],
)
def test_bad_instruction_files_name_the_entry(tmp_path: Path, content: str, needle: str):
    path = tmp_path / "texts.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=needle.replace("{", r"\{").replace("(", r"\(")):
        load_instructions(path)


def test_the_texts_survive_merging_and_gguf_export(own_model: Path, tiny_adapter_dir: Path, tmp_path: Path):
    from knowlm.weights.ops import merge_lora

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter_dir, adapter)
    (adapter / FILE_NAME).write_text(
        json.dumps({"oneke": {"ner": {"en": "From the adapter."}}}), encoding="utf-8"
    )
    merged = merge_lora(own_model, adapter, tmp_path / "merged")
    assert load_instructions(merged / FILE_NAME) == {"oneke": {"ner": {"en": "From the adapter."}}}
    if not is_llamacpp_available():
        pytest.skip("llama-cpp-python is not installed")
    from knowlm.engines import create_engine
    from knowlm.weights.gguf_export import export_gguf

    gguf = export_gguf(own_model, tmp_path / "own.gguf", qtype="f16")
    engine = create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=256))
    assert engine.ie_instructions == OWN
    assert (
        instruction_of(Extractor(engine, "ner", "person", template="raw"), TEXT_ZH)
        == OWN["oneke"]["ner"]["zh"]
    )

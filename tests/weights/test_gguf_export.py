"""`knowlm weights export-gguf`: the GGUF runs on llama.cpp and decodes the same greedy tokens as transformers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from knowlm.cli.main import main
from knowlm.engines.llamacpp import is_llamacpp_available
from knowlm.errors import InputError
from knowlm.weights import gguf_export
from knowlm.weights.gguf_export import export_gguf, read_metadata
from tests.conftest import CORPUS

needs_llamacpp = pytest.mark.skipif(
    not is_llamacpp_available(), reason="llama-cpp-python is not installed (make install-llamacpp)"
)
PROMPTS = [CORPUS[0][:40], CORPUS[3][:30], "hello world 北京 ünïcode"]


def hf_run(directory: Path, ids: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """Transformers' greedy continuation (float32) and its logits at every position of prompt + continuation."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
        logits = model(out).logits[0].numpy()
    return out[0, len(ids) :].tolist(), logits


def assert_matches_transformers(
    gguf: Path, directory: Path, prompt: str, expected_prompt: list[int], *, n: int, tol: float
) -> int:
    """llama.cpp tokenizes ``prompt`` as expected; on prompt + transformers' greedy continuation its logits
    are within ``tol`` of transformers' everywhere, so its greedy choice is the same wherever the top two
    logits are more than 2 * tol apart. Returns how many such steps there were."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    assert llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True) == expected_prompt
    tokens, hf_logits = hf_run(directory, expected_prompt, n)
    llm.eval(expected_prompt + tokens)
    cpp_logits = np.asarray(llm.scores[: len(expected_prompt) + n])
    assert np.abs(cpp_logits - hf_logits).max() < tol
    clear = 0
    for step, token in enumerate(tokens):
        position = len(expected_prompt) - 1 + step
        top2 = np.sort(hf_logits[position])[-2:]
        if top2[1] - top2[0] > 2 * tol:
            assert cpp_logits[position].argmax() == token, f"step {step}"
            clear += 1
    return clear


@pytest.fixture(scope="module")
def peaky_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LLaMA with q/k scaled up: attention is sharp, so a wrong rotary layout changes the logits
    (with a random model's near-uniform attention it would hardly show)."""
    from safetensors.torch import load_file, save_file

    directory = tmp_path_factory.mktemp("peaky")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    weights = load_file(directory / "model.safetensors")
    for name in weights:
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            weights[name] = weights[name] * 4.0
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


@pytest.fixture(scope="module")
def tiny_gguf(peaky_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_gguf(peaky_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf", qtype="f16")


def test_metadata_describes_the_model_and_tokenizer(tiny_model_dir: Path, tiny_gguf: Path):
    meta = {k: v[0] for k, v in read_metadata(tiny_gguf).items()}
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == config["num_hidden_layers"]
    assert meta["llama.attention.head_count_kv"] == config["num_key_value_heads"]
    assert meta["llama.rope.dimension_count"] == config["hidden_size"] // config["num_attention_heads"]
    tokens = meta["tokenizer.ggml.tokens"]
    assert len(tokens) == config["vocab_size"] and tokens[1] == "<s>"
    assert meta["tokenizer.ggml.bos_token_id"] == 1 and meta["tokenizer.ggml.add_space_prefix"] is True
    assert meta["tokenizer.ggml.token_type"][tokens.index("<0x41>")] == 6  # byte-fallback tokens
    assert "tokenizer.chat_template" in meta


def test_rotary_permutation_interleaves_the_halves():
    import torch

    weight = torch.arange(16, dtype=torch.float32).reshape(16, 1)  # 2 heads of 8 rows
    permuted = gguf_export._permute_rotary(weight, heads=2)
    # per head, HF's halves [a0 a1 a2 a3 | b0 b1 b2 b3] become Meta's pairs [a0 b0 a1 b1 a2 b2 a3 b3]
    assert permuted[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


@pytest.mark.requires_llamacpp
@needs_llamacpp
@pytest.mark.parametrize("prompt", PROMPTS)
def test_f16_gguf_decodes_the_same_greedy_tokens_as_transformers(
    peaky_model_dir: Path, tiny_gguf: Path, prompt: str
):
    from transformers import AutoTokenizer

    # the SentencePiece-style vocabulary made from tokenizer.json tokenizes as the HF tokenizer does
    ids = AutoTokenizer.from_pretrained(peaky_model_dir)(prompt).input_ids
    assert assert_matches_transformers(tiny_gguf, peaky_model_dir, prompt, ids, n=12, tol=0.03) >= 8


@pytest.fixture(scope="module")
def spm_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLaMA whose tokenizer is only a SentencePiece ``tokenizer.model``, as LLaMA 1/2 ship it."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = tmp_path_factory.mktemp("spm-llama")
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 5),
        model_writer=model_file,
        vocab_size=800,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        minloglevel=2,
    )
    (directory / "tokenizer.model").write_bytes(model_file.getvalue())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=800,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a wide logit spread: fewer near-ties
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(directory)
    return directory


@pytest.mark.requires_llamacpp
@needs_llamacpp
def test_sentencepiece_tokenizer_model_is_exported_exactly(spm_model_dir: Path, tmp_path: Path):
    import sentencepiece as spm

    out = export_gguf(spm_model_dir, tmp_path / "spm.gguf")
    sp = spm.SentencePieceProcessor(model_file=str(spm_model_dir / "tokenizer.model"))
    steps = [
        assert_matches_transformers(out, spm_model_dir, p, [sp.bos_id(), *sp.encode(p)], n=10, tol=0.03)
        for p in PROMPTS
    ]
    assert sum(steps) >= 20, steps


@pytest.mark.requires_llamacpp
@needs_llamacpp
def test_exported_gguf_runs_in_the_llamacpp_engine(tiny_gguf: Path):
    from knowlm.config import ModelConfig, SamplingParams
    from knowlm.engines import create_engine

    engine = create_engine(ModelConfig(model=str(tiny_gguf), engine="llamacpp"))
    (done,) = engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=8))
    assert done.completion_tokens == 8


def test_q8_0_quantizes_matrices_and_keeps_norms_float32(tiny_model_dir: Path, tmp_path: Path):
    import gguf
    from safetensors.torch import load_file

    out = export_gguf(tiny_model_dir, tmp_path / "tiny-q8_0.gguf", qtype="q8_0")
    reader = gguf.GGUFReader(out)
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.ffn_up.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"
    embed = next(t for t in reader.tensors if t.name == "token_embd.weight")
    restored = gguf.quants.dequantize(embed.data, embed.tensor_type)
    original = load_file(tiny_model_dir / "model.safetensors")["model.embed_tokens.weight"]
    scale = original.abs().max().item()
    assert np.abs(restored - original.numpy()).max() < scale / 100
    f16 = export_gguf(tiny_model_dir, tmp_path / "tiny-f16.gguf", qtype="f16")
    assert out.stat().st_size < 0.7 * f16.stat().st_size


def test_cli_writes_the_file_and_rejects_bad_input(tiny_model_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "m.gguf"
    assert main(["weights", "export-gguf", str(tiny_model_dir), "--out", str(out), "--type", "f32"]) == 0
    assert read_metadata(out)["general.file_type"][0] == 0  # ALL_F32
    assert main(["weights", "export-gguf", str(tiny_model_dir), "--out", str(tmp_path / "m.bin")]) == 2
    assert "should name a .gguf file" in capsys.readouterr().err


def test_unsupported_architecture_and_byte_level_tokenizer_are_refused(tiny_model_dir: Path, tmp_path: Path):
    other = tmp_path / "gpt2"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(InputError, match="convert_hf_to_gguf"):
        export_gguf(other, tmp_path / "x.gguf")
    (other / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    tokenizer["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(InputError, match="byte-level BPE"):
        export_gguf(other, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf*"))


def test_interrupted_export_leaves_nothing_behind(tiny_model_dir: Path, tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    encode = gguf_export._encode

    def failing(tensor, kind):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return encode(tensor, kind)

    monkeypatch.setattr(gguf_export, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        export_gguf(tiny_model_dir, tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.requires_llamacpp
@needs_llamacpp
def test_default_model_exports_and_matches_transformers(tmp_path: Path):
    from knowlm.models.default import default_hf_dir

    directory = default_hf_dir()
    out = export_gguf(directory, tmp_path / "default-f16.gguf")
    meta = read_metadata(out, "tokenizer.ggml.model")
    assert meta["tokenizer.ggml.model"][0] == "llama"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    for prompt in ("The capital of France is", "北京是中国的"):
        assert (
            assert_matches_transformers(out, directory, prompt, tokenizer(prompt).input_ids, n=8, tol=0.1)
            >= 6
        )


def test_header_reader_finds_where_the_tensors_end(tiny_gguf: Path):
    """`check_gguf` reads the header itself (no metadata objects); it must agree with gguf's reader."""
    from gguf import GGUFReader

    from knowlm.models.resolve import gguf_data_end

    reader = GGUFReader(tiny_gguf)
    expected = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    assert gguf_data_end(tiny_gguf) == expected == tiny_gguf.stat().st_size

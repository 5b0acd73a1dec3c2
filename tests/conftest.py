"""Shared fixtures: a tiny tokenizer and tiny random LLaMA models, built offline in temp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: the Hub is reported offline at once. Set before any test module is
# imported, because huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (a per-test
# setting came too late: a Hub download in the full suite waited 23 s for the blocked network).
os.environ["HF_HUB_OFFLINE"] = "1"

CORPUS = [
    "Knowledge graphs store facts as triples: subject, relation, object.",
    "Berlin is the capital of Germany. Paris is the capital of France.",
    "Apple was founded by Steve Jobs in California in 1976.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>|/#-_=+*&%$@",
    "北京是中国的首都。浙江大学位于杭州。知识图谱由三元组构成。",
    "### Instruction:\n### Input:\n### Response:\n<start_of_turn>user\nhi<end_of_turn>\n",
]

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]

TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `expensive` (README blocks that train for minutes) run only with KNOWLM_TEST_EXPENSIVE=1."""
    if os.environ.get("KNOWLM_TEST_EXPENSIVE"):
        return
    skip = pytest.mark.skip(reason="trains for minutes: set KNOWLM_TEST_EXPENSIVE=1 to run it")
    for item in items:
        if "expensive" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The project's reference data (../shared/data beside the checkout; CI has it too)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def build_tokenizer(chat_template: str | None = TINY_CHAT_TEMPLATE):
    """A LLaMA-style tokenizer: SentencePiece-like BPE over "▁"-joined words with byte fallback."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizer
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL, show_progress=False)
    trainer_tok.train_from_iterator(CORPUS * 5, trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab = dict(learned["vocab"])
    for byte in range(256):  # byte fallback: any character outside the vocabulary is spelled in bytes
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    raw = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    raw.normalizer = normalizer
    raw.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    raw.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def build_llama(tokenizer, *, hidden_size: int = 64, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits spread: greedy choices are not near-ties
        model.lm_head.weight.mul_(8.0)
    return model.eval()


def save_model(tmp: Path, *, safetensors: bool = True, hidden_size: int = 64, seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    model = build_llama(tokenizer, hidden_size=hidden_size, seed=seed)
    if safetensors:
        model.save_pretrained(tmp)
    else:  # a legacy PyTorch checkpoint, as older LLaMA releases ship
        import torch

        model.config.save_pretrained(tmp)
        torch.save(model.state_dict(), tmp / "pytorch_model.bin")
    tokenizer.save_pretrained(tmp)
    return tmp


def local_engines(model_dir: Path, tmp: Path) -> dict:
    """The transformers engine on ``model_dir`` and, when llama-cpp-python is installed, the llama.cpp
    engine on its f16 GGUF export (written under ``tmp``): for tests that compare engines."""
    from knowlm.config import ModelConfig
    from knowlm.engines import create_engine
    from knowlm.engines.llamacpp import is_llamacpp_available

    found = {"transformers": create_engine(ModelConfig(model=str(model_dir), engine="transformers"))}
    if is_llamacpp_available():
        from knowlm.weights.gguf_export import export_gguf

        gguf = export_gguf(model_dir, tmp / f"{model_dir.name}.gguf", qtype="f16")
        found["llamacpp"] = create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=256))
    return found


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random LLaMA with a 400-token BPE tokenizer, saved as safetensors."""
    return save_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    from knowlm.config import ModelConfig
    from knowlm.engines import create_engine

    return create_engine(
        ModelConfig(model=str(tiny_model_dir), engine="transformers", device="cpu", batch_size=4)
    )


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for the tiny model with non-zero B matrices (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(out)
    return out


@pytest.fixture
def knowlm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KNOWLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"

import pytest
import torch

from knowlm.config import ModelConfig
from knowlm.errors import InputError
from knowlm.models.loading import AdapterMismatchError, load_transformers
from tests.conftest import save_model


def _logits(model, tokenizer, text="Berlin is the capital"):
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_load_tiny_llama_safetensors(tiny_model_dir):
    model, tokenizer = load_transformers(ModelConfig(model=str(tiny_model_dir), device="cpu"))
    assert model.config.num_hidden_layers == 2 and model.dtype == torch.float32
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert not model.training


def test_bin_checkpoint_loads_the_same_weights(tmp_path, tiny_model_dir):
    bin_dir = save_model(tmp_path / "bin", safetensors=False)
    assert list(bin_dir.glob("*.bin")) and not list(bin_dir.glob("*.safetensors"))
    a, tok = load_transformers(ModelConfig(model=str(bin_dir), device="cpu"))
    b, _ = load_transformers(ModelConfig(model=str(tiny_model_dir), device="cpu"))
    assert torch.equal(_logits(a, tok), _logits(b, tok))


def test_dtype_is_applied(tiny_model_dir):
    model, _ = load_transformers(ModelConfig(model=str(tiny_model_dir), dtype="bfloat16"))
    assert model.dtype == torch.bfloat16


def test_adapter_changes_outputs(tiny_model_dir, tiny_adapter_dir):
    base, tok = load_transformers(ModelConfig(model=str(tiny_model_dir), device="cpu"))
    tuned, _ = load_transformers(
        ModelConfig(model=str(tiny_model_dir), adapter=str(tiny_adapter_dir), device="cpu")
    )
    assert not type(tuned).__name__.startswith("Peft")  # merged into the weights for inference
    assert not torch.allclose(_logits(base, tok), _logits(tuned, tok))
    from peft import PeftModel

    unmerged = PeftModel.from_pretrained(
        load_transformers(ModelConfig(model=str(tiny_model_dir), device="cpu"))[0], str(tiny_adapter_dir)
    ).eval()
    assert torch.allclose(_logits(unmerged, tok), _logits(tuned, tok), atol=1e-5)


def test_adapter_for_another_base_is_rejected(tmp_path, tiny_adapter_dir):
    other = save_model(tmp_path / "wide", hidden_size=96)
    with pytest.raises(AdapterMismatchError, match="does not fit"):
        load_transformers(ModelConfig(model=str(other), adapter=str(tiny_adapter_dir)))


def test_adapter_dir_without_config(tmp_path, tiny_model_dir):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"missing adapter_config\.json; it contains: weights\.bin"):
        load_transformers(ModelConfig(model=str(tiny_model_dir), adapter=str(tmp_path)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error path")
@pytest.mark.parametrize("flag", ["load_in_8bit", "load_in_4bit"])
def test_bitsandbytes_on_cpu_is_a_clear_error(tiny_model_dir, flag):
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        load_transformers(ModelConfig(model=str(tiny_model_dir), **{flag: True}))


def test_cuda_device_without_gpu(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA GPU"):
        load_transformers(ModelConfig(model=str(tiny_model_dir), device="cuda"))

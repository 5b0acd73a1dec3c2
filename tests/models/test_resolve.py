from pathlib import Path

import numpy as np
import pytest

from knowlm.errors import CorruptFileError, ModelNotFoundError
from knowlm.models import resolve_model


def write_gguf(path: Path) -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_local_hf_directory(tiny_model_dir):
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.kind == "hf" and resolved.path == tiny_model_dir and not resolved.is_gguf


def test_gguf_file(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    resolved = resolve_model(str(path))
    assert resolved.kind == "gguf" and resolved.is_gguf


def test_gguf_with_bad_magic(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(CorruptFileError, match="not a GGUF file"):
        resolve_model(str(bad))


def test_truncated_gguf(tmp_path):
    path = write_gguf(tmp_path / "t.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(CorruptFileError, match=r"truncated|damaged"):
        resolve_model(str(path))


def test_missing_path_is_not_found():
    with pytest.raises(ModelNotFoundError, match="no such file or directory"):
        resolve_model("./does/not/exist")
    with pytest.raises(ModelNotFoundError, match="not a Hub id"):
        resolve_model("no-such-model-anywhere")


def test_directory_without_weights_lists_contents(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match=r"missing weights.*contains: config.json, notes.txt"):
        resolve_model(str(tmp_path))


def test_adapter_directory_given_as_model(tiny_adapter_dir):
    with pytest.raises(ModelNotFoundError, match="--adapter"):
        resolve_model(str(tiny_adapter_dir))


def test_non_gguf_file(tmp_path):
    f = tmp_path / "weights.pt"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"not a \.gguf model"):
        resolve_model(str(f))


def test_hub_id_offline_fails_with_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match=r"could not download 'zjunlp/knowlm-13b-zhixi'.*network"):
        resolve_model("zjunlp/knowlm-13b-zhixi")


def test_default_resolves_to_the_embedded_gguf():
    resolved = resolve_model("default")
    assert resolved.kind == "default" and resolved.is_gguf
    assert resolved.path.name == "gemma-3-270m-q4_k_m.gguf" and resolved.path.stat().st_size > 100e6

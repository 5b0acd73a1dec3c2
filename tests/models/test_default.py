import json

import pytest

from knowlm.models import default


def test_cache_root_honours_knowlm_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("KNOWLM_CACHE", str(tmp_path / "k"))
    assert default.cache_root() == tmp_path / "k"
    monkeypatch.delenv("KNOWLM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default.cache_root() == tmp_path / "xdg" / "knowlm"


def _fake_export(gguf, out):
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"w" * 100)
    (out / "config.json").write_text("{}")
    default.write_manifest(out)


def test_interrupted_export_leaves_no_cache(knowlm_cache, monkeypatch):
    monkeypatch.setattr(default, "default_gguf", lambda: knowlm_cache / "x.gguf")

    def crash(gguf, out):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(default, "_export", crash)
    with pytest.raises(KeyboardInterrupt):
        default.default_hf_dir()
    assert not default.export_dir().exists()
    assert [p.name for p in default.default_dir().iterdir()] == []  # no temp dirs left behind


def test_export_is_reused_and_a_broken_one_rebuilt(knowlm_cache, monkeypatch):
    monkeypatch.setattr(default, "default_gguf", lambda: knowlm_cache / "x.gguf")
    calls = []
    monkeypatch.setattr(default, "_export", lambda g, o: (calls.append(o), _fake_export(g, o)))
    first = default.default_hf_dir()
    assert default.default_hf_dir() == first and len(calls) == 1
    (first / "model.safetensors").write_bytes(b"truncated")  # e.g. a disk-full copy
    assert default.verify_export(first, full=False) == "model.safetensors has 9 bytes, expected 100"
    default.default_hf_dir()
    assert len(calls) == 2 and default.verify_export(first, full=True) is None


def test_full_verification_detects_changed_content(knowlm_cache):
    out = knowlm_cache / "export"
    _fake_export(None, out)
    (out / "model.safetensors").write_bytes(b"x" * 100)  # same size, other bytes
    assert default.verify_export(out, full=False) is None
    assert default.verify_export(out, full=True) == "model.safetensors has a wrong SHA-256"
    manifest = json.loads((out / default.MANIFEST).read_text())
    assert set(manifest["files"]) == {"model.safetensors", "config.json"}


def test_gemma_chat_template_renders_turns():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment().from_string(default.GEMMA_CHAT_TEMPLATE)
    text = template.render(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Who are you?"},
        ],
        add_generation_prompt=True,
        bos_token="<bos>",
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model\n"
    )

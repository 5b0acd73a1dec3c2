import shutil
from pathlib import Path

import pytest

from knowlm.cli.main import main
from knowlm.errors import InputError
from knowlm.weights.download import zhixi_repos


def test_repo_choice_like_knowlms_tool():
    assert zhixi_repos() == ["zjunlp/zhixi-13b-diff", "zjunlp/zhixi-13b-lora"]
    assert zhixi_repos(fp16=True, only_base=True) == ["zjunlp/zhixi-13b-diff-fp16"]
    assert zhixi_repos(only_lora=True) == ["zjunlp/zhixi-13b-lora"]
    with pytest.raises(InputError):
        zhixi_repos(only_base=True, only_lora=True)


def test_download_from_a_fake_hub(tmp_path, monkeypatch, capsys):
    """The hub client is replaced by a copy from a local directory shaped like the Hub repos."""
    import huggingface_hub

    hub = tmp_path / "hub"
    for repo in ("zhixi-13b-diff-fp16", "zhixi-13b-lora"):
        (hub / repo).mkdir(parents=True)
        (hub / repo / "config.json").write_text("{}")
    calls = []

    def fake_snapshot_download(repo_id, revision=None, local_dir=None, **kw):
        calls.append((repo_id, revision))
        shutil.copytree(hub / repo_id.split("/")[-1], local_dir, dirs_exist_ok=True)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert main(["download", "--out", str(tmp_path / "w"), "--fp16"]) == 0
    assert calls == [("zjunlp/zhixi-13b-diff-fp16", None), ("zjunlp/zhixi-13b-lora", None)]
    assert (tmp_path / "w" / "zhixi-13b-lora" / "config.json").exists()


def test_offline_download_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["download", "zjunlp/zhixi-13b-lora", "--out", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert "could not download zjunlp/zhixi-13b-lora" in err and "rerun the same command" in err
    assert Path(tmp_path / "w").is_dir()

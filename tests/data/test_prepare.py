"""`knowlm data prepare` end to end: sources, counters, determinism, resumption, bad input; inspect, merge."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from knowlm.cli.main import main
from knowlm.config import PrepareConfig
from knowlm.data import indexed
from knowlm.data.indexed import IndexedDataset
from knowlm.data.prepare import prepare
from knowlm.errors import CorruptFileError, InputError, KnowLMError
from tests.conftest import build_tokenizer

WORDS = [
    *("knowledge", "graph", "entity", "relation", "event", "model", "data", "text", "language"),
    *("extraction", "triple", "schema", "city", "river", "company", "person", "founder", "capital"),
    *("country", "year", "study", "method", "result", "paper", "table", "value"),
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(path)
    return path


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))).capitalize() + "."


def document(rng: random.Random, sentences: int = 6) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def config(tok_dir: Path, out: Path, *sources: str, **kw) -> PrepareConfig:
    values = {"source": list(sources), "out": str(out), "tokenizer": str(tok_dir), "seq_length": 64}
    return PrepareConfig(**{**values, **kw})


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "pretrain"  # shipped with the repo


def files_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".bin", ".idx")}


def test_sample_corpus_same_output_for_any_worker_count(tok_dir, tmp_path):
    pattern = str(SAMPLE / "*.txt")
    one = prepare(config(tok_dir, tmp_path / "w1", f"sample={pattern}", seq_length=128), progress=False)
    two = prepare(
        config(tok_dir, tmp_path / "w2", f"sample={pattern}", seq_length=128, workers=2, batch_docs=37),
        progress=False,
    )
    assert files_bytes(tmp_path / "w1") == files_bytes(tmp_path / "w2")
    assert not (tmp_path / "w1" / ".work").exists()
    c = one["counters"]
    assert c == two["counters"]
    dropped = sum(v for k, v in c.items() if k.startswith("dropped."))
    assert c["kept"] > 400 and c["kept"] + dropped == c["documents"]
    ds = IndexedDataset(tmp_path / "w1" / "sample")
    tokenizer = build_tokenizer()
    assert len(ds) == c["samples"] and ds.num_tokens == c["tokens"] and ds.num_documents == c["kept"]
    assert int(ds.sizes.max()) <= 128 and all(ds[i][0] == tokenizer.bos_token_id for i in range(len(ds)))
    assert ds.metadata["tokenizer"] == one["tokenizer"] and ds.dtype is np.uint16
    # a document's last sample ends with EOS, and samples decode back to corpus text
    ends = ds.doc_index[1:] - 1
    assert all(ds[int(i)][-1] == tokenizer.eos_token_id for i in ends)
    corpus = "".join(p.read_text(encoding="utf-8") for p in SAMPLE.glob("*.txt"))
    text = tokenizer.decode(ds[5].tolist(), skip_special_tokens=True)
    assert text.strip()[:20] in corpus
    for manifest in (one, two):  # timings of the run
        assert set(manifest["seconds"]) == {"setup", "process", "merge"}
        assert all(v >= 0 for v in manifest["seconds"].values()) and manifest["seconds"]["process"] > 0


def test_worker_that_cannot_start_reports_why(tmp_path):
    """A failing Pool initializer would restart workers forever: the error is kept and raised by the batch."""
    import threading

    from knowlm.data import prepare as prep
    from knowlm.data.clean import CleanRules

    settings = prep.Settings(CleanRules(), 64, None, None, True, False, "exact", 128, 0.8, "uint16")
    prep._init_worker(str(tmp_path / "missing-tokenizer.json"), settings, threading.Barrier(1))
    with pytest.raises(KnowLMError, match="a worker process could not start: Exception: No such file"):
        prep.process_batch(["some text"])
    prep._worker.clear()


def test_counters_for_every_reason(tok_dir, tmp_path):
    rng = random.Random(0)
    base = document(rng, 12)
    words = base.split()
    words[7] = "zebra"
    near = " ".join(words)  # one word changed: a near duplicate
    records = [
        {"text": base},
        {"text": near},
        {"text": base.upper()},  # an exact duplicate once case is folded
        {"text": "tiny"},
        {"text": "■★◆●▲■★◆●▲ " * 5},
        {"text": "Buy now.\n" * 10 + "Real line."},
        {"text": "A document\x00 with a control character. " + document(rng)},
        {"other": "no text field"},
        {"text": document(rng)},
    ]
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "{broken json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = prepare(config(tok_dir, tmp_path / "out", str(path)), progress=False)
    c = manifest["sources"]["docs"]["counters"]
    assert c["skipped.invalid_json"] == 1 and c["skipped.missing_field"] == 1
    assert c["documents"] == 8 and c["kept"] == 3
    assert c["dropped.duplicate_near"] == 1 and c["dropped.duplicate_exact"] == 1
    assert c["dropped.too_short"] == 1 and c["dropped.symbols"] == 1 and c["dropped.repeated_lines"] == 1
    assert c["changed.control_chars_removed"] == 1


def test_sources_formats_templates_and_weights(tok_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    rng = random.Random(1)
    (tmp_path / "wiki").mkdir()
    with gzip.open(tmp_path / "wiki" / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        for _ in range(5):
            f.write(json.dumps({"title": sentence(rng), "content": document(rng)}) + "\n")
    with zstandard.open(tmp_path / "wiki" / "b.jsonl.zst", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"title": sentence(rng), "content": document(rng)}) + "\n")
    pq.write_table(
        pa.table({"input": [document(rng) for _ in range(4)], "output": [document(rng) for _ in range(4)]}),
        tmp_path / "code.parquet",
    )
    (tmp_path / "book.txt").write_text(document(rng) + "\n" + document(rng), encoding="utf-8")
    out = tmp_path / "out"
    manifest = prepare(
        PrepareConfig(
            source=[
                f"wiki={tmp_path}/wiki/*:0.6",
                {"name": "code", "path": str(tmp_path / "code.parquet"), "template": "{input}\n{output}"},
                {"path": str(tmp_path / "book.txt"), "text_mode": "file", "weight": 0.5},
            ],
            out=str(out),
            tokenizer=str(tok_dir),
            seq_length=64,
            template="{title}\n{content}",
        ),
        progress=False,
    )
    sources = manifest["sources"]
    assert list(sources) == ["wiki", "code", "book"]
    assert [sources[n]["weight"] for n in sources] == [0.6, 1.0, 0.5]
    assert [sources[n]["documents"] for n in sources] == [6, 4, 1]
    assert all(indexed.exists(out / n) for n in sources)


def test_bad_input_gives_clear_errors(tok_dir, tmp_path, capsys):
    bad_gz = tmp_path / "bad.jsonl.gz"
    good = gzip.compress(b'{"text": "' + b"word " * 200 + b'"}\n' * 50)
    bad_gz.write_bytes(good[: len(good) // 2])
    args = ["--source", str(bad_gz), "--out", str(tmp_path / "o1"), "--tokenizer", str(tok_dir)]
    code = main(["data", "prepare", *args, "--no-progress"])
    assert code == 2
    assert f"{bad_gz}: cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "o1" / "bad.bin").exists()

    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait et une longue phrase".encode("latin-1"))
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        prepare(config(tok_dir, tmp_path / "o2", str(latin)), progress=False)

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="no samples from source"):
        prepare(config(tok_dir, tmp_path / "o3", str(empty)), progress=False)

    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"body": "a long enough document body text"}\n' * 3)
    with pytest.raises(InputError, match=r"skipped\.missing_field 3"):
        prepare(config(tok_dir, tmp_path / "o4", str(no_field)), progress=False)

    with pytest.raises(InputError, match="no files match"):
        prepare(config(tok_dir, tmp_path / "o5", str(tmp_path / "nothing-*.txt")), progress=False)
    with pytest.raises(InputError, match="names must differ"):
        prepare(config(tok_dir, tmp_path / "o6", f"a={latin}", f"a={empty}"), progress=False)


def test_rerun_with_other_settings_needs_overwrite(tok_dir, tmp_path):
    rng = random.Random(2)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(document(rng) for _ in range(20)), encoding="utf-8")
    out = tmp_path / "out"
    first = prepare(config(tok_dir, out, str(corpus)), progress=False)
    assert prepare(config(tok_dir, out, str(corpus)), progress=False) == first  # nothing to do
    with pytest.raises(InputError, match="--overwrite"):
        prepare(config(tok_dir, out, str(corpus), seq_length=32), progress=False)
    again = prepare(config(tok_dir, out, str(corpus), seq_length=32, overwrite=True), progress=False)
    assert again["seq_length"] == 32 and int(IndexedDataset(out / "c").sizes.max()) <= 32


def _corpus_files(root: Path, files: int = 14, docs: int = 300) -> str:
    rng = random.Random(3)
    root.mkdir()
    for k in range(files):
        (root / f"part{k:02d}.txt").write_text(
            "\n".join(document(rng, rng.randint(1, 8)) for _ in range(docs)), encoding="utf-8"
        )
    return str(root / "*.txt")


def test_killed_preparation_resumes_to_the_same_output(tok_dir, tmp_path):
    pattern = _corpus_files(tmp_path / "corpus")
    common = ["--tokenizer", str(tok_dir), "--seq-length", "64", "--no-progress"]
    assert main(["data", "prepare", "--source", pattern, "--out", str(tmp_path / "full"), *common]) == 0

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "knowlm.cli.main", "data", "prepare", "--source", pattern, "--out", str(out)]
    proc = subprocess.Popen([*cmd, *common], stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": "src"})
    deadline = time.monotonic() + 300
    while not list((out / ".work").glob("*.done.json")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list((out / ".work").glob("*.done.json"))
    assert not (out / "manifest.json").exists() and 0 < len(done) < 14, "the run was not cut in the middle"

    assert main(["data", "prepare", "--source", pattern, "--out", str(out), *common]) == 0
    assert files_bytes(out) == files_bytes(tmp_path / "full")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counters"] == json.loads((tmp_path / "full" / "manifest.json").read_text())["counters"]


def test_inspect_and_merge_cli(tok_dir, tmp_path, capsys):
    rng = random.Random(4)
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_text("\n".join(document(rng) for _ in range(10)), encoding="utf-8")
    common = ["--tokenizer", str(tok_dir), "--seq-length", "48", "--no-progress"]
    assert (
        main(["data", "prepare", "--source", str(tmp_path / "a.txt"), "--out", str(tmp_path / "A"), *common])
        == 0
    )
    assert (
        main(["data", "prepare", "--source", str(tmp_path / "b.txt"), "--out", str(tmp_path / "B"), *common])
        == 0
    )
    capsys.readouterr()
    assert main(["data", "inspect", str(tmp_path / "A"), "--samples", "1"]) == 0
    text = capsys.readouterr().out
    assert "== a" in text and "of 48" in text and "-- sample" in text
    assert main(["data", "inspect", str(tmp_path / "A"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["a"]
    assert stats["samples"] == len(IndexedDataset(tmp_path / "A" / "a")) and stats["length_max"] <= 48

    merged = tmp_path / "AB"
    assert main(["data", "merge", str(merged), str(tmp_path / "A" / "a"), str(tmp_path / "B" / "b")]) == 0
    ab = IndexedDataset(merged)
    a, b = IndexedDataset(tmp_path / "A" / "a"), IndexedDataset(tmp_path / "B" / "b")
    assert len(ab) == len(a) + len(b) and ab[len(a)].tolist() == b[0].tolist()
    assert main(["data", "inspect", str(tmp_path / "nowhere")]) == 2

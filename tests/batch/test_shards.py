"""Corpus inputs and outputs: which files a spec names, how their records decode, what a rerun may reuse."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from knowlm.batch.shards import Manifest, decode_records, list_shards, output_name, read_shard
from knowlm.errors import InputError


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "2024" / "01").mkdir(parents=True)
    (root / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    (root / "2024" / "01" / "b.jsonl").write_text('{"text": "y"}\n', encoding="utf-8")
    (root / "2024" / "c.txt").write_text("z\n", encoding="utf-8")
    (root / ".hidden.jsonl").write_text("{}\n", encoding="utf-8")
    (root / "_SUCCESS").write_text("", encoding="utf-8")
    return root


def names(spec: str) -> list[str]:
    return [s.name for s in list_shards(spec)[1]]


def test_a_directory_is_every_visible_file_below_it_in_a_stable_order(corpus: Path) -> None:
    assert names(str(corpus)) == ["2024/01/b.jsonl", "2024/c.jsonl", "a.jsonl"]


def test_globs_match_like_a_shell_with_double_star_crossing_directories(corpus: Path) -> None:
    assert names(f"{corpus}/**/*.jsonl") == ["2024/01/b.jsonl", "a.jsonl"]
    assert names(f"{corpus}/*.jsonl") == ["a.jsonl"]
    assert names(f"{corpus}/2024/*") == ["c.jsonl"]
    assert names(f"file://{corpus}/**/*.txt") == ["2024/c.jsonl"]


def test_a_single_file_is_one_shard_named_after_it(corpus: Path) -> None:
    assert names(str(corpus / "2024" / "c.txt")) == ["c.jsonl"]


def test_missing_inputs_and_colliding_outputs_are_refused(corpus: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list_shards(str(corpus / "nope"))
    with pytest.raises(InputError, match="no input files"):
        list_shards(f"{corpus}/**/*.parquet")
    (corpus / "a.txt").write_text("w\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"would both write a\.jsonl"):
        list_shards(str(corpus))


def test_output_names_drop_compression_and_take_jsonl() -> None:
    assert output_name("x/y.jsonl.gz") == "x/y.jsonl"
    assert output_name("d.parquet") == "d.jsonl"
    assert output_name("notes") == "notes.jsonl"


def test_jsonl_records_keep_ids_and_report_bad_lines_by_number() -> None:
    data = b'{"id": "d1", "text": "Tim Cook"}\n\nnot json\n[1]\n{"text": ""}\n{"text": "no id"}\n'
    records = decode_records("in.jsonl", data)
    assert records[0] == {"line": 1, "id": "d1", "text": "Tim Cook"}
    assert records[1]["line"] == 3 and "in.jsonl line 3: invalid JSON" in records[1]["error"]
    assert "line 4: expected a JSON object" in records[2]["error"]
    assert "line 5: no text in field 'text'" in records[3]["error"]
    assert records[4] == {"line": 6, "id": 6, "text": "no id"}


def test_text_files_hold_one_text_a_line_and_other_fields_can_be_named() -> None:
    assert decode_records("a.txt", "第一行\n\n第二行\n".encode()) == [
        {"line": 1, "id": 1, "text": "第一行"},
        {"line": 3, "id": 3, "text": "第二行"},
    ]
    data = b'{"doc": "k", "body": "text here"}\n'
    assert decode_records("a.jsonl", data, text_field="body", id_field="doc")[0]["id"] == "k"
    assert "not UTF-8" in decode_records("a.txt", b"\xff\xfe")[0]["error"]


def test_parquet_and_compressed_files_are_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["one", None]}), tmp_path / "d.parquet")
    records = decode_records("d.parquet", (tmp_path / "d.parquet").read_bytes())
    assert records[0] == {"line": 1, "id": "p1", "text": "one"}
    assert "d.parquet row 2: no text" in records[1]["error"]
    (tmp_path / "z.jsonl.gz").write_bytes(gzip.compress(b'{"text": "zipped"}\n'))
    filesystem, shards = list_shards(str(tmp_path / "z.jsonl.gz"))
    data = read_shard(filesystem, shards[0].path)
    assert decode_records(shards[0].path, data)[0]["text"] == "zipped"


def test_a_rerun_with_other_settings_is_refused_and_the_same_settings_reuse_the_manifest(
    tmp_path: Path,
) -> None:
    Manifest(tmp_path, {"schema": ["person"]}).save(shards=2)
    assert Manifest(tmp_path, {"schema": ["person"]}).data["shards"] == 2
    with pytest.raises(InputError, match=r"other settings \(schema\)"):
        Manifest(tmp_path, {"schema": ["place"]})
    (tmp_path / "knowlm-run.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="not a KnowLM run manifest"):
        Manifest(tmp_path, {})

"""The .bin/.idx indexed dataset: round trip, dtypes, merge, atomic writes, damaged files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from knowlm.data import indexed
from knowlm.data.indexed import IndexedDataset, IndexedDatasetWriter, dtype_for, merge
from knowlm.errors import CorruptFileError, InputError


def write(prefix, docs, dtype=np.uint16, metadata=None):
    with IndexedDatasetWriter(prefix, dtype, metadata or {"tokenizer": "t1"}) as writer:
        for doc in docs:
            for sample in doc:
                writer.add(sample)
            writer.end_document()
    return IndexedDataset(prefix)


def random_docs(seed, high=60000):
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(0, high, rng.integers(0, 50)).tolist() for _ in range(rng.integers(1, 4))]
        for _ in range(30)
    ]


def test_dtype_follows_the_vocabulary():
    assert dtype_for(32000) is np.uint16 and dtype_for(65536) is np.uint16
    assert dtype_for(65537) is np.uint32 and dtype_for(262144) is np.uint32


@pytest.mark.parametrize("dtype,high", [(np.uint16, 65535), (np.uint32, 262144)])
def test_round_trip(tmp_path, dtype, high):
    docs = random_docs(0, high)
    ds = write(tmp_path / "ds", docs, dtype, {"tokenizer": "t1", "vocab_size": high})
    samples = [s for doc in docs for s in doc]
    assert len(ds) == len(samples) and ds.num_documents == len(docs)
    assert ds.dtype is dtype and ds.metadata["vocab_size"] == high
    assert ds.num_tokens == sum(len(s) for s in samples)
    for i in np.random.default_rng(1).permutation(len(samples)):
        assert ds[int(i)].tolist() == samples[i]
    assert ds[-1].tolist() == samples[-1]
    assert [x.tolist() for x in ds] == samples
    starts = np.cumsum([0] + [len(d) for d in docs])
    assert ds.doc_index.tolist() == starts.tolist()
    with pytest.raises(IndexError):
        ds[len(samples)]
    copy = pickle.loads(pickle.dumps(ds))  # DataLoader workers reopen the files
    assert copy[3].tolist() == samples[3]


def test_empty_dataset(tmp_path):
    ds = write(tmp_path / "empty", [])
    assert len(ds) == 0 and ds.num_tokens == 0 and ds.num_documents == 0


def test_token_ids_must_fit_the_dtype(tmp_path):
    with pytest.raises(InputError, match="outside"), IndexedDatasetWriter(tmp_path / "x", np.uint16) as w:
        w.add([70000])
    assert not list(tmp_path.iterdir())  # the failed write left nothing behind


def test_interrupted_writer_leaves_no_files(tmp_path):
    with pytest.raises(RuntimeError), IndexedDatasetWriter(tmp_path / "x", np.uint16) as w:
        w.add([1, 2, 3])
        raise RuntimeError("killed")
    assert not indexed.exists(tmp_path / "x") and not list(tmp_path.iterdir())


def test_merge(tmp_path):
    a_docs, b_docs = random_docs(2), random_docs(3)
    write(tmp_path / "a", a_docs)
    write(tmp_path / "b", b_docs)
    merged = merge([tmp_path / "a", tmp_path / "b"], tmp_path / "ab")
    expected = [s for d in a_docs + b_docs for s in d]
    assert [x.tolist() for x in merged] == expected
    assert merged.num_documents == len(a_docs) + len(b_docs)
    assert merged.metadata["merged_from"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    write(tmp_path / "c", a_docs, metadata={"tokenizer": "other"})
    with pytest.raises(InputError, match="different tokenizers"):
        merge([tmp_path / "a", tmp_path / "c"], tmp_path / "ac")
    write(tmp_path / "d", a_docs, np.uint32)
    with pytest.raises(InputError, match="dtype"):
        merge([tmp_path / "a", tmp_path / "d"], tmp_path / "ad")
    assert not indexed.exists(tmp_path / "ad")


def test_damaged_files_are_reported(tmp_path):
    write(tmp_path / "ds", random_docs(4))
    bin_path, idx_path = indexed.paths(tmp_path / "ds")
    data = bin_path.read_bytes()
    bin_path.write_bytes(data[:-6])
    with pytest.raises(CorruptFileError, match="truncated"):
        IndexedDataset(tmp_path / "ds")
    bin_path.write_bytes(data)
    idx = idx_path.read_bytes()
    idx_path.write_bytes(idx[:-8])
    with pytest.raises(CorruptFileError, match="truncated"):
        IndexedDataset(tmp_path / "ds")
    idx_path.write_bytes(b"NOTKNOWL" + idx[8:])
    with pytest.raises(CorruptFileError, match="not a KnowLM index"):
        IndexedDataset(tmp_path / "ds")
    idx_path.unlink()
    with pytest.raises(InputError, match="no such file"):
        IndexedDataset(tmp_path / "ds")

"""`knowlm data inspect`: statistics of a prepared dataset and a few decoded samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.data.indexed import IndexedDataset
from knowlm.errors import InputError


def open_prepared(path: str | Path) -> list[tuple[str, IndexedDataset, float]]:
    """(name, dataset, weight) for a prepared directory (its manifest's sources) or one PREFIX."""
    path = Path(path)
    manifest = path / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return [
            (n, IndexedDataset(path / s["prefix"]), float(s["weight"])) for n, s in data["sources"].items()
        ]
    if path.is_dir():
        raise InputError(f"{path}: a directory without manifest.json; give a prepared directory or a PREFIX")
    return [(path.name, IndexedDataset(path), 1.0)]


def stats(ds: IndexedDataset) -> dict[str, Any]:
    sizes = np.asarray(ds.sizes, dtype=np.int64)
    seq = int(ds.metadata.get("seq_length") or (sizes.max() if len(sizes) else 0))
    out: dict[str, Any] = {
        "samples": len(ds),
        "documents": ds.num_documents,
        "tokens": ds.num_tokens,
        "dtype": np.dtype(ds.dtype).name,
        "seq_length": seq,
        "tokenizer": ds.metadata.get("tokenizer_ref"),
        "tokenizer_fingerprint": ds.metadata.get("tokenizer"),
    }
    if len(sizes):
        p = np.percentile(sizes, [5, 50, 95])
        out.update(
            length_min=int(sizes.min()),
            length_p5=float(p[0]),
            length_median=float(p[1]),
            length_p95=float(p[2]),
            length_max=int(sizes.max()),
            fill=round(float(sizes.sum() / (len(sizes) * seq)), 4) if seq else None,
            full_samples=round(float((sizes == seq).mean()), 4) if seq else None,
        )
    return out


def inspect_dataset(
    path: str | Path, *, samples: int = 2, seed: int = 0, tokenizer: str | None = None
) -> dict[str, Any]:
    """Statistics per source (and decoded samples as text when ``samples`` > 0)."""
    sources = open_prepared(path)
    report: dict[str, Any] = {"stats": {name: {**stats(ds), "weight": w} for name, ds, w in sources}}
    lines = []
    decoder = None
    if samples > 0:
        from knowlm.data.tokenizer import load_tokenizer

        ref = tokenizer or sources[0][1].metadata.get("tokenizer_ref")
        if not ref:
            raise InputError("the dataset does not name its tokenizer; give --tokenizer")
        decoder = load_tokenizer(ref)
    rng = np.random.default_rng(seed)
    for name, ds, weight in sources:
        s = report["stats"][name]
        lines.append(f"== {name} ({ds.prefix}) weight {weight}")
        lines.append(
            f"   {s['samples']} samples, {s['documents']} documents, {s['tokens']} tokens ({s['dtype']}), "
            f"tokenizer {s['tokenizer']} [{s['tokenizer_fingerprint']}]"
        )
        if s["samples"]:
            lines.append(
                f"   length min {s['length_min']} / median {s['length_median']:.0f} / p95 {s['length_p95']:.0f}"
                f" / max {s['length_max']} of {s['seq_length']}; fill {s['fill']:.1%}, full samples "
                f"{s['full_samples']:.1%}"
            )
        if decoder is not None and len(ds):
            for i in sorted(rng.choice(len(ds), size=min(samples, len(ds)), replace=False).tolist()):
                text = decoder.decode(ds[i].tolist())
                lines.append(f"-- sample {i} ({len(ds[i])} tokens)\n{text}")
    report["text"] = "\n".join(lines)
    return report

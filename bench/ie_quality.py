"""Extraction quality of the default model: base zero-shot, base few-shot, IE adapter, adapter constrained.

Prepares the evaluation sets from ../shared/data with `knowlm data convert-ie` (CLUENER: 1,000 texts held
out of train with seed 0, the same split the adapter's training data excluded; CoNLL-2003: valid; the
last 10 InstructKGC RE records, also excluded from training), then runs `knowlm eval` for every setting
on the first --docs documents of each set and writes bench/results/ie_quality.json plus a Markdown table.

    python bench/ie_quality.py [--docs 30] [--new-tokens 96] [--workdir runs/ie-quality]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KNOWLM = [sys.executable, "-m", "knowlm.cli.main"]
SETTINGS = {
    "base, zero-shot": ["--no-adapter"],
    "base, 3-shot": ["--no-adapter", "--few-shot", "3", "--few-shot-from", "{train}"],
    "IE adapter": [],
    "IE adapter, --constrained": ["--constrained"],
}


def prepare(work: Path) -> dict[str, tuple[str, Path]]:
    """The evaluation files: name -> (task, path)."""
    work.mkdir(parents=True, exist_ok=True)
    sets = {
        "CLUENER dev (zh NER)": ("ner", work / "cluener-dev.jsonl"),
        "CoNLL-2003 valid (en NER)": ("ner", work / "conll-valid.jsonl"),
        "InstructKGC RE (zh)": ("re", work / "kgc-re-dev.jsonl"),
    }
    commands = [
        [*KNOWLM, "data", "convert-ie", "cluener", str(DATA / "cluener" / "train.json"), "--out",
         str(work / "cluener-train.jsonl"), "--holdout", "1000", "--holdout-out", str(sets["CLUENER dev (zh NER)"][1]),
         "--limit", "550"],
        [*KNOWLM, "data", "convert-ie", "conll2003", str(DATA / "conll2003" / "valid.txt"), "--out",
         str(sets["CoNLL-2003 valid (en NER)"][1]), "--mode", "eval", "--limit", "1000"],
        [*KNOWLM, "data", "convert-ie", "conll2003", str(DATA / "conll2003" / "train.txt"), "--out",
         str(work / "conll-train.jsonl"), "--limit", "550"],
    ]  # fmt: skip
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    re_records = (DATA / "instructkgc" / "re" / "train.json").read_text(encoding="utf-8").splitlines()
    sets["InstructKGC RE (zh)"][1].write_text("\n".join(re_records[-10:]) + "\n", encoding="utf-8")
    # few-shot examples come from the training side of each split
    shots = work / "shots.jsonl"
    with shots.open("w", encoding="utf-8") as f:
        for name in ("cluener-train.jsonl", "conll-train.jsonl"):
            f.write((work / name).read_text(encoding="utf-8"))
        f.write("\n".join(re_records[:20]) + "\n")
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=30, help="documents per evaluation set")
    parser.add_argument("--new-tokens", type=int, default=96, help="max new tokens per answer")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "ie-quality")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ie_quality.json")
    args = parser.parse_args()
    sets = prepare(args.workdir)
    rows = []
    for setting, extra in SETTINGS.items():
        for name, (task, path) in sets.items():
            report = args.workdir / f"report-{len(rows)}.json"
            options = [x.replace("{train}", str(args.workdir / "shots.jsonl")) for x in extra]
            command = [*KNOWLM, "eval", "--task", task, "--data", str(path), "--limit", str(args.docs),
                       "--max-new-tokens", str(args.new_tokens), "--report", str(report), "--json", *options]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            result = json.loads(report.read_text())
            rows.append(
                {
                    "setting": setting,
                    "set": name,
                    "documents": result["documents"],
                    "precision": result["precision"],
                    "recall": result["recall"],
                    "f1": result["f1"],
                    "parse_success": round(1 - result["parse_failure_rate"], 3),
                    "by_type": {k: v["f1"] for k, v in result["by_type"].items()},
                    "seconds": round(seconds, 1),
                    "command": " ".join(["knowlm", *command[3:]]),
                }
            )
            print(f"{setting:<28} {name:<28} F1 {result['f1']:.3f}  parse {rows[-1]['parse_success']:.0%}  "
                  f"{seconds:.0f} s", flush=True)  # fmt: skip
    from knowlm.io import atomic_write

    with atomic_write(args.out) as f:
        json.dump(
            {
                "benchmark": "ie_quality",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "rows": rows,
            },
            f,
            indent=1,
            ensure_ascii=False,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

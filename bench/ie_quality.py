"""Extraction quality of the default model on held-out data: NER and RE, adapters old and new, free and
constrained, with 95% bootstrap intervals, per-type F1, type-confusion tables and the calibration of the
items' confidences (ECE, precision / recall per threshold).

Evaluation sets (seeded samples of each dev split, never training data), made with `knowlm data
convert-ie` from ../shared/data:
  CLUENER (zh NER)      the first --docs of the 1,000 texts held out of train with seed 0 (the adapter's
                        training data comes from the other 9,748)
  CoNLL-2003 (en NER)   --docs sentences of valid, sampled with seed 0
  CoNLL04 (en RE)       --docs sentences of dev, sampled with seed 0
  (both as running text, `--detokenize`: "in Dallas." rather than "in Dallas .", as users write)
  FinRE (zh RE)         --docs sentences of valid, sampled with seed 0
  SanWen (zh RE)        --docs sentences of valid, sampled with seed 0
  Re-DocRED (en RE)     the first --docs of the 150 dev documents held out of the v7 adapter's training
                        (seed 21), whole documents with the schema of the 82 relation types it trained on,
                        asked as `--model default` asks so large a schema: one relation a prompt, text first
  Re-DocRED unseen      the same documents with the 14 relation types no adapter trained on
                        (recipes/data/redocred-unseen-relations.txt); an entity's other names score as it
Sentences that also occur in the adapter's training records (--train-data; the public sets repeat a few
between their splits) are left out before the --docs are taken.
Each setting runs `knowlm eval --data` (llama.cpp, greedy) on the adapter merged into the default model
as a q8_0 GGUF (the path `--model default` takes), saving answers as it goes: an interrupted run resumes.
Results go to bench/results/ie_quality.json; `--write-docs` renders them into docs/ie-quality.md and the
adapter's model card (between the `ie-quality` markers), so the published numbers are the measured ones;
`--curve RUN` measures every checkpoint of a training run instead (the `ie-curve` markers).

    python bench/ie_quality.py [--docs 200] [--set-docs redocred=50] [--settings adapter-constrained]
                               [--sets cluener,conll2003,conll04,finre,sanwen] [--write-docs]
    python bench/ie_quality.py --curve runs/ie-adapter-default --docs 100 --sets conll2003,conll04
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KNOWLM = [sys.executable, "-m", "knowlm.cli.main"]
SETS = {
    "cluener": ("CLUENER dev (zh NER, 10 types)", "ner"),
    "conll2003": ("CoNLL-2003 valid (en NER, 4 types)", "ner"),
    "conll04": ("CoNLL04 dev (en RE, 5 relations)", "re"),
    "finre": ("FinRE valid (zh RE, 27 relations)", "re"),
    "sanwen": ("SanWen valid (zh RE, 9 relations)", "re"),
    "redocred": ("Re-DocRED held-out documents (en RE, 82 relations)", "re"),
    "redocred-unseen": ("Re-DocRED held-out documents, unseen relations (en RE, 14)", "re"),
}
NEW_TOKENS = {"redocred": 384, "redocred-unseen": 256}  # whole documents: long answers
UNSEEN = ROOT / "recipes" / "data" / "redocred-unseen-relations.txt"
# setting -> (adapter: "new" = this package's, "old" = --old-adapter, None = base model; constrained)
SETTINGS: dict[str, tuple[str | None, bool]] = {
    "adapter": ("new", False),
    "adapter-constrained": ("new", True),
    "old-adapter": ("old", False),
    "old-adapter-constrained": ("old", True),
    "base": (None, False),
}
LABELS = {
    "adapter": "IE adapter (this release), free decoding (--no-constrained)",
    "adapter-constrained": "IE adapter (this release)",
    "old-adapter": "previous IE adapter, free decoding",
    "old-adapter-constrained": "previous IE adapter",
    "base": "base model, zero-shot",
}


def prepare(work: Path, docs: int, train: Path | None) -> dict[str, Path]:
    """The evaluation files (OneKE records, one id per document), made once: ``docs`` documents of each
    set whose text does not occur in the training data ``train`` (the public sets repeat some sentences
    between their splits)."""
    work.mkdir(parents=True, exist_ok=True)
    files = {name: work / f"{name}-eval.jsonl" for name in SETS}
    raw = {name: work / f"{name}-sample.jsonl" for name in SETS}
    spare = str(docs + 50)
    commands = {
        "cluener": ["cluener", DATA / "cluener" / "train.json", "--out", work / "cluener-rest.jsonl",
                    "--holdout", "1000", "--holdout-out", raw["cluener"], "--limit", "1"],
        "conll2003": ["conll2003", DATA / "conll2003" / "valid.txt", "--out", raw["conll2003"],
                      "--mode", "eval", "--limit", spare, "--detokenize"],
        "conll04": ["conll04", DATA / "conll04" / "dev.json", "--out", raw["conll04"], "--mode", "eval",
                    "--limit", spare, "--detokenize"],
        "finre": ["finre", DATA / "finre" / "valid.txt", "--out", raw["finre"], "--mode", "eval",
                  "--limit", spare],
        "sanwen": ["sanwen", DATA / "sanwen" / "valid.txt", "--out", raw["sanwen"], "--mode", "eval",
                   "--limit", spare],
    }  # fmt: skip
    unseen = ",".join(UNSEEN.read_text(encoding="utf-8").split("\n")).strip(",")
    for name, option in (("redocred", "--exclude-types"), ("redocred-unseen", "--only-types")):
        commands[name] = ["docred", DATA / "redocred" / "dev.json", "--out", work / "redocred-rest.jsonl",
                          "--holdout", "150", "--holdout-out", raw[name], "--seed", "21", "--limit", "1",
                          option, unseen]  # fmt: skip
    seen = _inputs(train) if train else set()
    for name, args in commands.items():
        if files[name].exists() and _documents(files[name]) >= docs and _current(files[name]):
            continue  # made before for at least as many documents (a smaller file is made again)
        subprocess.run([*KNOWLM, "data", "convert-ie", *map(str, args)], check=True, capture_output=True)
        records = [json.loads(line) for line in raw[name].read_text(encoding="utf-8").splitlines()]
        ids = [r["id"] for r in records if json.loads(r["instruction"])["input"] not in seen]
        keep = set(list(dict.fromkeys(ids))[:docs])
        kept = asked_as_default([r for r in records if r["id"] in keep])
        with files[name].open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    return files


def asked_as_default(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluation records asked the way `--model default` asks (`knowlm.ie.extractor.how_to_ask` with
    `DEFAULT_IE_OPTIONS`), each record's gold split with its schema: Re-DocRED's 82 relations one a prompt
    with the text first; sets the default model asks in the task's batches keep the converter's."""
    from knowlm.ie.extractor import how_to_ask
    from knowlm.ie.formats import text_first_instruction
    from knowlm.ie.tasks import get_task
    from knowlm.models.default import DEFAULT_IE_OPTIONS

    relations = {n for r in records if r["task"] == "RE" for n in json.loads(r["instruction"])["schema"]}
    task = get_task("re")
    fmt, size = how_to_ask(task, len(relations), DEFAULT_IE_OPTIONS["re"])
    if not relations or (fmt, size) == ("oneke", task.batch_size):
        return records
    split = []
    for record in records:
        body, gold = json.loads(record["instruction"]), json.loads(record["output"])
        for start in range(0, len(body["schema"]), size):
            batch = body["schema"][start : start + size]
            one = json.dumps({**body, "schema": batch}, ensure_ascii=False)
            output = json.dumps({r: gold.get(r, []) for r in batch}, ensure_ascii=False)
            instruction = text_first_instruction(one) if fmt == "oneke-text-first" else one
            split.append({**record, "instruction": instruction, "output": output})
    return split


def _current(path: Path) -> bool:
    """Whether a cached evaluation file asks as `asked_as_default` does (files made by older versions of
    this benchmark asked Re-DocRED's 82 relations in batches of 4)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return asked_as_default(records) == records


def _documents(path: Path) -> int:
    """How many documents (distinct ids) an evaluation file holds."""
    return len({json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()})


def _inputs(path: Path) -> set[str]:
    """The input texts of a OneKE training file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {json.loads(json.loads(line)["instruction"])["input"] for line in lines if line.strip()}


def model_args(adapter: str | None, new: Path | None, old: Path | None) -> list[str]:
    if adapter is None:
        return ["--model", "default", "--no-adapter"]
    from knowlm.models.default import default_adapter, default_ie_gguf

    directory = (new or default_adapter()) if adapter == "new" else old
    if directory is None:
        raise SystemExit(
            f"no {adapter} adapter: pass --{'adapter' if adapter == 'new' else 'old-adapter'} DIR"
        )
    return ["--model", str(default_ie_gguf(Path(directory))), "--engine", "llamacpp"]


def docs_for(name: str, args: argparse.Namespace) -> int:
    """Documents measured of set ``name``: --set-docs's count for it, else --docs."""
    return int(args.set_docs.get(name, args.docs))


def _set_docs(text: str) -> dict[str, int]:
    """--set-docs: 'redocred=50,redocred-unseen=100'."""
    counts = {}
    for part in filter(None, text.split(",")):
        name, _, n = part.partition("=")
        if name not in SETS or not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: want SET=N with SET one of {', '.join(SETS)}")
        counts[name] = int(n)
    return counts


def run_setting(setting: str, name: str, path: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    adapter, constrained = SETTINGS[setting]
    model = model_args(adapter, args.adapter, args.old_adapter)
    return measure(setting, name, path, model, constrained, args, work)


def measure(
    setting: str,
    name: str,
    path: Path,
    model: list[str],
    constrained: bool,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """One `knowlm eval` run (resumed or reused when its files exist) as a results row."""
    docs = docs_for(name, args)
    tag = f"{setting}-{name}-{docs}"
    report, answers = work / f"report-{tag}.json", work / f"answers-{tag}.jsonl"
    command = [*KNOWLM, "eval", "--task", SETS[name][1], "--data", str(path), "--limit", str(docs),
               "--max-new-tokens", str(NEW_TOKENS.get(name, args.new_tokens)), "--report", str(report), "--output", str(answers),
               "--json", *model, "--constrained" if constrained else "--no-constrained"]  # fmt: skip
    timing = work / f"timing-{tag}.json"  # wall time of a run that was not resumed (docs/s)
    if not report.exists():
        resumed = Path(f"{answers}.partial").exists()
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        if not resumed:
            timing.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))
    seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else None
    result = json.loads(report.read_text())
    row = {
        "setting": setting,
        "set": name,
        "documents": result["documents"],
        "f1": result["f1"],
        "f1_ci95": result["f1_ci95"],
        "precision": result["precision"],
        "recall": result["recall"],
        "gold": result["gold"],
        "predicted": result["predicted"],
        "parse_success": round(1 - result["parse_failure_rate"], 4),
        "by_type": {k: v["f1"] for k, v in result["by_type"].items()},
        "confusion": result["confusion"],
        "seconds": seconds,
        "docs_per_s": round(result["documents"] / seconds, 3) if seconds else None,
        "calibration": result.get("calibration"),
    }
    print(
        f"{setting:<26} {name:<10} F1 {row['f1']:.3f} [{row['f1_ci95'][0]:.3f}, {row['f1_ci95'][1]:.3f}]  "
        f"P {row['precision']:.3f} R {row['recall']:.3f}  parse {row['parse_success']:.0%}"
        + (f"  {row['docs_per_s']} docs/s" if row["docs_per_s"] else ""),
        flush=True,
    )
    return row


def curve(run: Path, sets: list[str], files: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """Dev F1 of every checkpoint of a training run (decoded as `knowlm extract` decodes: constrained),
    with the run's minutes and validation loss at that step, from its training_log.csv."""
    from knowlm.models.default import default_ie_gguf

    log = [r for r in csv.DictReader((run / "training_log.csv").open(encoding="utf-8")) if r["time"]]
    # minutes of training: the time between logged rows, except the pause of an interrupted and resumed
    # run (far longer than its steps take), which counts as the typical time of its steps
    pairs = [
        (float(b["time"]) - float(a["time"]), int(b["step"]) - int(a["step"]))
        for a, b in itertools.pairwise(log)
    ]
    rates = sorted(dt / ds for dt, ds in pairs if ds > 0)
    per_step = rates[len(rates) // 2] if rates else 0.0
    total = int(log[0]["step"]) * per_step if log else 0.0
    elapsed = {int(log[0]["step"]): total} if log else {}
    for row, (dt, ds) in zip(log[1:], pairs, strict=True):
        total += dt if dt <= 20 * max(ds, 1) * per_step else ds * per_step
        elapsed[int(row["step"])] = total
    points = []
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    wanted = {int(s) for s in args.curve_steps.split(",")} if args.curve_steps else None
    for checkpoint in checkpoints:
        step = int(checkpoint.name.split("-")[1])
        if wanted is not None and step not in wanted:
            continue
        at = [r for r in log if int(r["step"]) == step]
        point: dict[str, Any] = {
            "step": step,
            "minutes": round(elapsed[step] / 60, 1) if step in elapsed else None,
            "eval_loss": next((float(r["eval_loss"]) for r in at if r["eval_loss"]), None),
        }
        model = ["--model", str(default_ie_gguf(checkpoint)), "--engine", "llamacpp"]
        for name in sets:
            point[name] = measure(f"step{step}", name, files[name], model, True, args, args.workdir)["f1"]
        points.append(point)
    return {"run": str(run), "docs": args.docs, "constrained": True, "points": points}


def render_curve(result: dict[str, Any]) -> str:
    sets = [s for s in SETS if s in result["points"][0]]
    out = [
        f"Dev F1 at the run's checkpoints (`python bench/ie_quality.py --curve RUN --docs {result['docs']}`; "
        "constrained decoding, as `knowlm extract`; minutes from the first step, including checkpoint saves and validation):",
        "",
        "| step | minutes | validation loss | " + " | ".join(SETS[s][0].split(" (")[0] for s in sets) + " |",
        "|---|---|---|" + "---|" * len(sets),
    ]
    for p in result["points"]:
        loss = f"{p['eval_loss']:.3f}" if p["eval_loss"] is not None else "–"
        out.append(
            f"| {p['step']} | {p['minutes']} | {loss} | " + " | ".join(f"{p[s]:.3f}" for s in sets) + " |"
        )
    return "\n".join(out)


# ---- rendering --------------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    """Markdown tables of a results file: headline, per type, confusions."""
    rows = results["rows"]
    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    cell = {(r["setting"], r["set"]): r for r in rows}
    out = [
        f"Measured by `python bench/ie_quality.py` ({results['machine']}; llama.cpp, "
        "greedy, exact match). Cells: micro F1 [95% bootstrap interval], precision / recall, answers that "
        "parse.",
        "",
        "| setting | " + " | ".join(f"{SETS[s][0]}, {_docs_of(rows, s)} documents" for s in sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for setting in settings:
        cells = []
        for s in sets:
            r = cell.get((setting, s))
            cells.append(
                "–"
                if r is None
                else f"**{r['f1']:.3f}** [{r['f1_ci95'][0]:.2f}, {r['f1_ci95'][1]:.2f}] "
                f"({r['precision']:.2f} / {r['recall']:.2f}), {r['parse_success']:.0%}"
            )
        out.append(f"| {LABELS[setting]} | " + " | ".join(cells) + " |")
    speed = [r for r in rows if r["docs_per_s"]]
    if speed:
        out += ["", "Documents per second (each set's schema in batches, as `knowlm extract` does):", ""]
        out.append("| setting | " + " | ".join(SETS[s][0].split(" (")[0] for s in sets) + " |")
        out.append("|---|" + "---|" * len(sets))
        for setting in settings:
            values = [cell.get((setting, s), {}).get("docs_per_s") for s in sets]
            out.append(f"| {LABELS[setting]} | " + " | ".join(f"{v}" if v else "–" for v in values) + " |")
    main = settings[0]
    calibrated = [
        (s, cell[(main, s)]["calibration"]) for s in sets if (cell.get((main, s)) or {}).get("calibration")
    ]
    if calibrated:
        out += ["", f"Confidence ({LABELS[main]}): expected calibration error, then precision / recall of the "
                "items kept at each `--min-confidence`", ""]  # fmt: skip
        thresholds = [t["min_confidence"] for t in calibrated[0][1]["thresholds"]]
        out.append("| set | ECE | items | " + " | ".join(f">= {t}" for t in thresholds) + " |")
        out.append("|---|---|---|" + "---|" * len(thresholds))
        for s, cal in calibrated:
            kept = " | ".join(f"{t['precision']:.2f} / {t['recall']:.2f}" for t in cal["thresholds"])
            out.append(f"| {SETS[s][0]} | {cal['ece']:.3f} | {cal['items']} | {kept} |")
    out += ["", f"Per type ({LABELS[main]}): F1", ""]
    for s in sets:
        r = cell.get((main, s))
        if r:
            types = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["by_type"].items(), key=lambda kv: -kv[1]))
            out.append(f"- {SETS[s][0]}: {types}")
    out += ["", f"Confusions ({LABELS[main]}): gold type → type predicted for the same text, count", ""]
    for s in sets:
        r = cell.get((main, s))
        if r and r["confusion"]:
            pairs = sorted(
                ((g, p, n) for g, ps in r["confusion"].items() for p, n in ps.items()), key=lambda x: -x[2]
            )
            out.append(f"- {SETS[s][0]}: " + ", ".join(f"{g} → {p} {n}" for g, p, n in pairs[:8]))
    return "\n".join(out)


def _docs_of(rows: list[dict[str, Any]], name: str) -> str:
    """The documents a set was measured on (one number, or the range over settings)."""
    counts = sorted({r["documents"] for r in rows if r["set"] == name})
    return "-".join(map(str, (counts[0], counts[-1]))) if len(counts) > 1 else str(counts[0])


def write_between_markers(path: Path, text: str, marker: str = "ie-quality") -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    content = path.read_text(encoding="utf-8")
    if begin not in content or end not in content:
        raise SystemExit(f"{path}: no {begin} ... {end} markers to write between")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", content), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200, help="documents per evaluation set")
    parser.add_argument(
        "--set-docs",
        type=_set_docs,
        default={},
        metavar="SET=N[,SET=N...]",
        help="other document counts for some sets (whole Re-DocRED documents take about 10 s each)",
    )
    parser.add_argument("--new-tokens", type=int, default=128, help="max new tokens per answer")
    parser.add_argument(
        "--settings",
        default="adapter-constrained,old-adapter-constrained",
        help=f"of {', '.join(SETTINGS)}; '-constrained' is how `knowlm extract` decodes by default",
    )
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--adapter", type=Path, help="the adapter to measure (default: the shipped one)")
    parser.add_argument("--old-adapter", type=Path, help="the previous adapter, for comparison")
    parser.add_argument(
        "--train-data",
        type=Path,
        help="the adapter's training records: documents whose text occurs there are left out",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "ie-quality")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ie_quality.json")
    parser.add_argument("--write-docs", action="store_true", help="render the results into the docs")
    parser.add_argument(
        "--measured-only",
        action="store_true",
        help="collect only the combinations already measured (no runs)",
    )
    parser.add_argument(
        "--curve",
        type=Path,
        metavar="RUN",
        help="instead: dev F1 (--sets, --docs) at every checkpoint of the training run directory RUN",
    )
    parser.add_argument("--curve-steps", help="with --curve: only these checkpoints (comma-separated steps)")
    args = parser.parse_args()
    from knowlm.io import atomic_write

    if not DATA.is_dir():
        raise SystemExit(f"reference data not found: {DATA}")
    files = prepare(args.workdir, max(docs_for(n, args) for n in SETS), args.train_data)
    if args.curve:
        result = curve(args.curve, args.sets.split(","), files, args)
        out = args.out.with_name("ie_quality_curve.json")
        with atomic_write(out) as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
        print(f"wrote {out}")
        if args.write_docs:
            write_between_markers(ROOT / "docs" / "ie-quality.md", render_curve(result), "ie-curve")
            print("wrote docs/ie-quality.md")
        return
    rows = []
    for setting in args.settings.split(","):
        if setting not in SETTINGS:
            raise SystemExit(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
        for name in args.sets.split(","):
            if (
                args.measured_only
                and not (args.workdir / f"report-{setting}-{name}-{docs_for(name, args)}.json").exists()
            ):
                continue
            rows.append(run_setting(setting, name, files[name], args, args.workdir))
    results = {
        "benchmark": "ie_quality",
        "docs": args.docs,
        "set_docs": args.set_docs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    with atomic_write(args.out) as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    print(f"wrote {args.out}")
    if args.write_docs:
        from knowlm.models.default import default_adapter

        text = render(results)
        write_between_markers(ROOT / "docs" / "ie-quality.md", text)
        card = default_adapter()
        if card is not None:
            write_between_markers(card / "README.md", text)
        print("wrote docs/ie-quality.md and the model card")


if __name__ == "__main__":
    main()

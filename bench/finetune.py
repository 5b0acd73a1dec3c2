"""Benchmark: LoRA training throughput of `knowlm finetune` versus a plain PEFT + Trainer baseline.

Both train the same LoRA (r=16 on all linear layers) on the default model with the same OneKE
instruction data (../shared/data/instructkgc NER and RE samples, cutoff 256, batch 4) for the same number
of steps, in one run. The baseline is the Alpaca-LoRA style: right padding, the full output layer at every
position, float32. Ours: left padding with the output layer only at answer positions, and bfloat16
autocast. Reports tokens/s and loss-bearing (answer) tokens/s, and writes bench/results/finetune.json.

    python bench/finetune.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from knowlm.config import FinetuneConfig, ModelConfig
from knowlm.io import atomic_write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instructkgc"


def make_data(out: Path) -> Path:
    rows = []
    for task in ("ner", "re"):
        rows += (DATA / task / "train.json").read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


class Counter:
    """Counts the real (non-padding) tokens and the answer tokens of the batches a collator builds."""

    def __init__(self, collator: Any) -> None:
        self.collator, self.tokens, self.answer = collator, 0, 0

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(rows)
        self.tokens += int(batch["attention_mask"].sum())
        self.answer += int((batch["labels"][:, 1:] != -100).sum())
        return batch


def run_ours(config: FinetuneConfig) -> dict:
    import knowlm.train.sft as sft

    counters: list[Counter] = []
    original = sft.LeftPadCollator
    sft.LeftPadCollator = lambda pad: counters.append(Counter(original(pad))) or counters[-1]  # type: ignore[misc]
    try:
        summary = sft.finetune(config)
    finally:
        sft.LeftPadCollator = original  # type: ignore[misc]
    return {"seconds": summary["seconds"], "tokens": counters[0].tokens, "answer": counters[0].answer}


def run_baseline(config: FinetuneConfig, steps: int) -> dict:
    """Plain PEFT + Trainer: right padding (DataCollatorForSeq2Seq), full logits, float32."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from knowlm.models.loading import load_transformers
    from knowlm.train.sft import prepare_data

    model, tokenizer = load_transformers(ModelConfig(model=config.model, dtype="float32"))
    train, _ = prepare_data(config, tokenizer)
    model = get_peft_model(
        model,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    tokenizer.padding_side = "right"
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=config.batch_size,
            max_steps=steps,
            learning_rate=config.learning_rate,
            logging_steps=steps,
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            seed=config.seed,
            remove_unused_columns=False,
            dataloader_pin_memory=False,
            disable_tqdm=True,
        )
        counter = Counter(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
        trainer = Trainer(model=model, args=args, train_dataset=train.rows, data_collator=counter)
        started = time.perf_counter()
        trainer.train()
        return {"seconds": time.perf_counter() - started, "tokens": counter.tokens, "answer": counter.answer}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "finetune.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "train.jsonl")
        common = dict(
            model="default",
            data=str(data),
            template="alpaca",
            data_format="oneke",
            val_size=0,
            cutoff_len=256,
            batch_size=4,
            max_steps=args.steps,
            lora_r=16,
            lora_alpha=32,
            target_modules="all-linear",
            learning_rate=2e-4,
            logging_steps=args.steps,
            save_steps=10_000,
            report_to="none",
            seed=0,
        )
        ours = run_ours(
            FinetuneConfig(output_dir=str(Path(tmp) / "ours"), bf16=True, answer_only_logits=True, **common)
        )
        ours_f32 = run_ours(
            FinetuneConfig(
                output_dir=str(Path(tmp) / "ours32"), bf16=False, answer_only_logits=True, **common
            )
        )
        baseline = run_baseline(FinetuneConfig(output_dir=str(Path(tmp) / "base"), **common), args.steps)
    runs = {
        "ours (answer-only logits + bf16)": ours,
        "ours (answer-only logits, fp32)": ours_f32,
        "baseline (PEFT + Trainer, fp32)": baseline,
    }
    base_rate = baseline["answer"] / baseline["seconds"]
    rows = []
    for label, run in runs.items():
        row = {
            "run": label,
            "seconds": round(run["seconds"], 1),
            "tokens": run["tokens"],
            "answer_tokens": run["answer"],
            "tokens_per_s": round(run["tokens"] / run["seconds"], 1),
            "answer_tokens_per_s": round(run["answer"] / run["seconds"], 1),
        }
        row["answer_speedup_vs_baseline"] = round(row["answer_tokens_per_s"] / base_rate, 2)
        rows.append(row)
        print(
            f"{label:<36} {row['tokens_per_s']:7.1f} tokens/s {row['answer_tokens_per_s']:6.1f} answer tokens/s "
            f"{row['answer_speedup_vs_baseline']:5.2f}x",
            flush=True,
        )
    result = {
        "benchmark": "finetune",
        "model": "default (Gemma 3 270M)",
        "steps": args.steps,
        "batch": common["batch_size"],
        "cutoff_len": common["cutoff_len"],
        "data": "instructkgc ner+re train (OneKE)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "baseline": "baseline (PEFT + Trainer, fp32)",
        "rows": rows,
    }
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What both trainers (`sft.finetune`, `pretrain.pretrain`) share around the transformers Trainer: the
TrainingArguments built from a `TrainingSchedule`, precision checks, resuming, the CSV log and the final
save, which every rank must take part in (DeepSpeed ZeRO-3 gathers the partitioned weights from all ranks)."""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from knowlm.config import TrainingSchedule
from knowlm.errors import InputError, TrainingDivergedError
from knowlm.io import atomic_write

log = logging.getLogger(__name__)


def check_paths(config: TrainingSchedule) -> None:
    """Fail before loading anything when a given file is missing."""
    if config.deepspeed and not Path(config.deepspeed).is_file():
        raise InputError(f"--deepspeed {config.deepspeed}: no such file")


def zero_stage(deepspeed: str) -> int:
    """The ZeRO stage of a DeepSpeed JSON config (0 when it sets none)."""
    try:
        config = json.loads(Path(deepspeed).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"--deepspeed {deepspeed}: not a readable JSON config ({e})") from e
    return int(config.get("zero_optimization", {}).get("stage", 0))


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (oneDNN with AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resume_checkpoint(resume: str | None, out: Path) -> str | None:
    """The checkpoint to resume from: ``resume`` as given, or for 'auto' the latest in ``out`` (None: fresh)."""
    if resume != "auto":
        return resume
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(out)) if out.is_dir() else None
    if found is None:
        log.info("no checkpoint in %s: starting fresh", out)
    return found


def trainer_reports(report_to: str) -> str | list[str]:
    """The Trainer's ``report_to`` for our comma list (csv is our own callback, not a Trainer integration)."""
    return [r for r in report_to.split(",") if r == "tensorboard"] or "none"


def training_arguments(config: TrainingSchedule, *, has_eval: bool, **extra: Any) -> Any:
    """TrainingArguments for ``config``; ``extra`` adds or overrides the trainer-specific ones."""
    import torch
    from transformers import TrainingArguments

    settings: dict[str, Any] = {
        "output_dir": str(config.output_dir),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,  # transformers 5: a value below 1 is a share of the steps
        "weight_decay": config.weight_decay,
        "logging_steps": config.logging_steps,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.eval_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "use_cpu": not torch.cuda.is_available(),
        "report_to": trainer_reports(config.report_to),
        "seed": config.seed,
        "deepspeed": config.deepspeed,
        "prediction_loss_only": True,
        "remove_unused_columns": False,
        "ddp_find_unused_parameters": False,
        # log a NaN loss as NaN (the Trainer's default logs the running mean instead): `DivergenceGuard`
        "logging_nan_inf_filter": False,
    }
    return TrainingArguments(**{**settings, **extra})


def csv_logger(path: Path, extra: tuple[str, ...] = ()) -> Any:
    """A Trainer callback appending train/eval losses (and ``extra`` logged values) to a CSV file."""
    from transformers import TrainerCallback

    fields = ["step", "epoch", "loss", "eval_loss", *extra, "learning_rate", "grad_norm", "time"]

    class CsvLogger(TrainerCallback):
        """Appends every log (train and eval loss) to a CSV file; resumed runs keep appending."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if not state.is_world_process_zero or not logs or not {"loss", "eval_loss"} & set(logs):
                return
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(
                    {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 1), **logs}
                )

    return CsvLogger()


DIVERGED_HINT = (
    "lower --learning-rate, train in float32 (no --bf16), or look for unusual records in the data; "
    "a checkpoint saved before it (OUTPUT_DIR/checkpoint-*) is kept"
)


def divergence_guard() -> Any:
    """A Trainer callback that stops training at the first logged loss or gradient norm that is not
    finite (a diverged run only writes NaN weights from then on) and remembers where; the trainers raise
    `TrainingDivergedError` after ``trainer.train()`` instead of saving the final model."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        def __init__(self) -> None:
            self.problem: str | None = None

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            bad = {
                k: v
                for k, v in (logs or {}).items()
                if k in ("loss", "grad_norm", "eval_loss") and isinstance(v, float) and not math.isfinite(v)
            }
            if bad and self.problem is None:
                shown = ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))
                self.problem = f"training diverged at step {state.global_step} ({shown})"
            if self.problem is not None:  # no checkpoint or evaluation of NaN weights
                control.should_training_stop = True
                control.should_save = False
                control.should_evaluate = False

        def check_diverged(self) -> None:
            if self.problem is not None:
                raise TrainingDivergedError(
                    f"{self.problem}; nothing was saved as the final model: {DIVERGED_HINT}"
                )

    return DivergenceGuard()


def trainer_callbacks(out: Path, report_to: str, extra: tuple[str, ...] = ()) -> list[Any]:
    """The callbacks both trainers run: the divergence guard first, then the CSV log when asked for."""
    return [
        divergence_guard(),
        *([csv_logger(out / "training_log.csv", extra)] if "csv" in report_to else []),
    ]


def run_training(trainer: Any, resume: str | None) -> tuple[Any, float]:
    """Run ``trainer`` (from the checkpoint ``resume`` names, if any); its result and the seconds it took.
    Raises `TrainingDivergedError` when its divergence guard stopped it."""
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - started
    for callback in trainer.callback_handler.callbacks:
        if hasattr(callback, "check_diverged"):
            callback.check_diverged()
    return result, seconds


def check_finite(model: Any) -> None:
    """Refuse to save trainable weights that are not finite (a divergence between two logs)."""
    import torch

    for name, param in model.named_parameters():
        if param.requires_grad and param.numel() and not bool(torch.isfinite(param).all()):
            raise TrainingDivergedError(
                f"training diverged: the trained weight {name} is not finite; nothing was saved as the final "
                f"model: {DIVERGED_HINT}"
            )


# How long the main thread lets go of the GIL around the last collective (see `save_final`)
GLOO_SETTLE_S = 0.5


def save_final(trainer: Any, tokenizer: Any, out: Path, summary_name: str, summary: dict[str, Any]) -> None:
    """Save the trained weights on every rank (ZeRO-3 gathers them collectively; the Trainer writes on the
    main process only), then the tokenizer and the run summary on the main process. Under torchrun the
    process group is then torn down on every rank: left to interpreter exit, gloo's threads can abort a
    rank after a successful run ("terminate called without an active exception").

    The teardown waits (GIL released) before and after the last barrier: a gloo worker thread frees a
    finished collective after the caller has returned from it, and freeing one that holds Python tensors
    (the Trainer's gathers) needs the GIL. When the DDP model was then freed at once, the process group's
    destructor joined that thread while holding the GIL: a deadlock, seen on a loaded 2-core machine."""
    import torch.distributed as dist

    check_finite(trainer.model)
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        with atomic_write(out / summary_name) as f:
            json.dump(summary, f, indent=1, ensure_ascii=False, default=str)
    if dist.is_available() and dist.is_initialized():
        time.sleep(GLOO_SETTLE_S)
        dist.barrier()
        time.sleep(GLOO_SETTLE_S)
        dist.destroy_process_group()

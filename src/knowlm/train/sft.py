"""Supervised instruction tuning with the transformers Trainer: LoRA / QLoRA via PEFT, or full.

Speed on CPUs comes from two things the plain Alpaca-LoRA recipe does not do: the output layer (262k
words for Gemma) runs only at answer positions — batches are left-padded so answers line up at the end
and ``logits_to_keep`` skips the prompt — and optional bfloat16 autocast. Multi-GPU/multi-node runs go
through the Trainer's own launchers (``torchrun``, ``deepspeed``) with the same code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from knowlm.config import FinetuneConfig, ModelConfig
from knowlm.errors import InputError
from knowlm.io import atomic_write
from knowlm.train.data import IGNORE, Tokenized, load_examples, pack, split, tokenize
from knowlm.train.loop import (
    check_paths,
    native_cpu_bf16,
    resume_checkpoint,
    run_training,
    save_final,
    trainer_callbacks,
    training_arguments,
    zero_stage,
)

log = logging.getLogger(__name__)

# per architecture (config.model_type): the linear layers "auto" adapts
DEFAULT_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "baichuan": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def target_modules(model: Any, spec: str) -> list[str] | str:
    """Resolve --target-modules against the model; unknown names are an error listing the real ones."""
    import torch

    linear = sorted(
        {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )
    linear = [n for n in linear if n != "lm_head"]
    if spec == "all-linear":
        return linear
    if spec == "auto":
        wanted = DEFAULT_TARGETS.get(model.config.model_type)
        return [n for n in wanted if n in linear] if wanted else "all-linear"
    names = [n.strip() for n in spec.split(",") if n.strip()]
    missing = [n for n in names if n not in linear]
    if missing or not names:
        raise InputError(
            f"--target-modules: {', '.join(missing) or '(none)'} not found in the model; its linear layers are: "
            f"{', '.join(linear)}"
        )
    return names


def decoder_layers(model: Any) -> Any:
    """The model's list of transformer layers (the ``ModuleList`` as long as ``num_hidden_layers``)."""
    import torch

    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise InputError("--freeze-layers: could not find the model's list of transformer layers")


def freeze(model: Any, layers: int, embeddings: bool) -> None:
    """Full fine-tuning: stop gradients for the lowest ``layers`` layers and optionally the embeddings."""
    stack = decoder_layers(model) if layers else []
    if layers > len(stack):
        raise InputError(f"--freeze-layers {layers}: the model has only {len(stack)} layers")
    frozen = [*stack[:layers]]
    if embeddings:
        frozen.append(model.get_input_embeddings())
    for module in frozen:
        module.requires_grad_(False)


def _trainer_class() -> Any:
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class SFTTrainer(Trainer):
        """Trainer whose loss runs the output layer only where labels are (``answer_only_logits``)."""

        answer_only_logits = True

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if not self.answer_only_logits:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            target = labels[:, 1:]
            answer_cols = (target != IGNORE).any(dim=0).nonzero()
            start = int(answer_cols[0]) if len(answer_cols) else target.shape[1] - 1
            keep = torch.arange(start, target.shape[1], device=labels.device)
            outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
            logits = outputs.logits.float()
            kept = target[:, start:]
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), kept.reshape(-1), ignore_index=IGNORE, reduction="sum"
            )
            count = (
                num_items_in_batch if num_items_in_batch is not None else (kept != IGNORE).sum().clamp(min=1)
            )
            loss = loss / count
            return (loss, outputs) if return_outputs else loss

    return SFTTrainer


class _ListDataset:
    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class LeftPadCollator:
    """Left-pads a batch so every example's answer ends at the last column (answers line up), with
    position ids that ignore the padding; labels are padded with -100."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        pad = [width - len(r["input_ids"]) for r in rows]
        positions = [r.get("position_ids") or list(range(len(r["input_ids"]))) for r in rows]
        return {
            "input_ids": torch.tensor(
                [[self.pad_id] * p + r["input_ids"] for p, r in zip(pad, rows, strict=True)]
            ),
            "labels": torch.tensor([[IGNORE] * p + r["labels"] for p, r in zip(pad, rows, strict=True)]),
            "attention_mask": torch.tensor(
                [[0] * p + [1] * len(r["input_ids"]) for p, r in zip(pad, rows, strict=True)]
            ),
            "position_ids": torch.tensor([[0] * p + pos for p, pos in zip(pad, positions, strict=True)]),
        }


def prepare_data(config: FinetuneConfig, tokenizer: Any) -> tuple[Tokenized, Tokenized]:
    from knowlm.engines.base import render_with_tokenizer
    from knowlm.prompts import get_template

    has_chat = bool(getattr(tokenizer, "chat_template", None))
    render = (lambda m: render_with_tokenizer(tokenizer, m) or "") if has_chat else None
    template = get_template(config.template, render)
    assert config.data is not None  # validate() requires it
    examples = load_examples(config.data, template, data_format=config.data_format, render_chat=render)
    train, val = split(examples, config.val_size, config.seed)
    tok_train = tokenize(train, tokenizer, config.cutoff_len, train_on_inputs=config.train_on_inputs)
    tok_val = tokenize(val, tokenizer, config.cutoff_len, train_on_inputs=config.train_on_inputs)
    if not tok_train.rows:
        raise InputError(f"{config.data}: no training examples left after filtering")
    if config.packing:
        tok_train.rows = pack(tok_train.rows, config.cutoff_len)
    return tok_train, tok_val


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Train; returns a summary (also written to OUTPUT_DIR/knowlm-finetune.json)."""
    config.validate()
    import torch

    from knowlm.models.loading import apply_adapter, load_transformers

    out = Path(config.output_dir)  # type: ignore[arg-type]
    check_paths(config)
    init_adapter = initial_adapter(config.init_adapter) if config.init_adapter else None
    if config.eval_ie and not Path(config.eval_ie).is_file():
        raise InputError(f"--eval-ie {config.eval_ie}: no such file")
    if config.eval_ie and config.deepspeed and zero_stage(config.deepspeed) == 3:
        raise InputError(
            "--eval-ie generates on the main process alone, which ZeRO-3's partitioned weights do not "
            "allow: leave it out and run `knowlm eval` on the saved model"
        )
    if config.bf16 and not torch.cuda.is_available() and not native_cpu_bf16():
        # without AVX512-BF16/AMX, PyTorch falls back to a slow reference bf16 GEMM (about 5x slower
        # than float32 on an AVX2 EPYC here): float32 is the fast choice on such CPUs
        log.warning("--bf16: this CPU has no native bfloat16 matrix multiply; training in float32 instead")
        config = dataclasses.replace(config, bf16=False)
    # with LoRA the base weights are frozen: in bf16 they run native bf16 matmuls (PEFT keeps the adapter
    # weights in float32); full fine-tuning keeps float32 master weights and autocasts
    model_config = ModelConfig(
        model=config.model,
        dtype="bfloat16" if config.bf16 and config.method == "lora" else "float32",
        load_in_4bit=config.method == "qlora",
        trust_remote_code=config.trust_remote_code,
    )
    if config.method == "qlora" and not torch.cuda.is_available():
        raise InputError("--method qlora needs a CUDA GPU (bitsandbytes 4-bit); on CPU use --method lora")
    torch.manual_seed(config.seed)
    model, tokenizer = load_transformers(model_config)
    train_data, val_data = prepare_data(config, tokenizer)
    if config.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        targets = target_modules(model, config.target_modules)
        if config.method == "qlora":
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=config.gradient_checkpointing
            )
        count = len(decoder_layers(model)) if config.freeze_layers else 0
        if config.freeze_layers >= max(count, 1):
            raise InputError(f"--freeze-layers {config.freeze_layers}: the model has only {count} layers")
        if init_adapter is not None:
            model = apply_adapter(model, init_adapter, trainable=True)
        else:
            model = get_peft_model(
                model,
                LoraConfig(
                    r=config.lora_r,
                    lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout,
                    target_modules=targets,
                    layers_to_transform=list(range(config.freeze_layers, count))
                    if config.freeze_layers
                    else None,
                    task_type="CAUSAL_LM",
                ),
            )
    else:
        freeze(model, config.freeze_layers, config.freeze_embeddings)
    model.train()
    resume = resume_checkpoint(config.resume, out)
    args = training_arguments(
        config,
        has_eval=bool(val_data.rows),
        load_best_model_at_end=bool(val_data.rows),
        metric_for_best_model="eval_loss" if val_data.rows else None,
        greater_is_better=False,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        dataloader_pin_memory=False,
        disable_tqdm=False,
    )
    trainer_class = _trainer_class()
    trainer_class.answer_only_logits = config.answer_only_logits
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=_ListDataset(train_data.rows),
        eval_dataset=_ListDataset(val_data.rows) if val_data.rows else None,
        data_collator=LeftPadCollator(tokenizer.pad_token_id),
        callbacks=trainer_callbacks(out, config.report_to),
    )
    result, seconds = run_training(trainer, resume)
    summary: dict[str, Any] = {
        "config": asdict(config),
        "examples": {
            "train": len(train_data.rows),
            "validation": len(val_data.rows),
            "truncated": train_data.truncated + val_data.truncated,
            "packed": config.packing,
        },
        "tokens": {"train": train_data.tokens, "answer": train_data.answer_tokens},
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "log": [entry for entry in trainer.state.log_history if "loss" in entry or "eval_loss" in entry],
    }
    if val_data.rows:
        summary["eval_loss"] = trainer.evaluate()["eval_loss"]
    if config.eval_ie and trainer.is_world_process_zero():
        summary["eval_ie"] = evaluate_ie(trainer.model, tokenizer, config)
    save_final(trainer, tokenizer, out, "knowlm-finetune.json", summary)
    if trainer.is_world_process_zero():
        save_instructions(config, out, init_adapter)
    return summary


def initial_adapter(ref: str) -> Path:
    """The adapter directory ``--init-adapter`` names ('default': the IE adapter shipped with the package)."""
    if ref == "default":
        from knowlm.models.default import default_adapter

        shipped = default_adapter()
        if shipped is None:
            raise InputError(
                "--init-adapter default: this installation has no IE adapter for the default model"
            )
        return shipped
    from knowlm.models.loading import check_adapter

    return check_adapter(ref, "--init-adapter")


def save_instructions(config: FinetuneConfig, out: Path, earlier: Path | None = None) -> None:
    """With OneKE-format training data, keep the IE instruction texts the model learned beside it
    (`knowlm.ie.instructions`), so that extraction prompts it with exactly those; an adapter trained further
    (``earlier``: the ``--init-adapter`` directory) keeps the texts it had learned before too (this data's
    win where both have one)."""
    from knowlm.ie.instructions import FILE_NAME, directory_instructions, instructions_from_records

    if config.data_format not in ("auto", "oneke"):
        return
    try:
        texts = instructions_from_records(config.data)  # type: ignore[arg-type]
    except InputError:  # not OneKE records (alpaca or chat data): nothing to keep
        return
    merged = directory_instructions(earlier) or {}
    for fmt, tasks in texts.items():
        for task, langs in tasks.items():
            merged.setdefault(fmt, {}).setdefault(task, {}).update(langs)
    with atomic_write(out / FILE_NAME) as f:
        json.dump(merged, f, ensure_ascii=False, indent=1)


def evaluate_ie(model: Any, tokenizer: Any, config: FinetuneConfig) -> dict[str, Any]:
    """Run the trained model on a OneKE dev file (as `knowlm eval --data` does) and write ie-eval.json
    beside the adapter."""
    from knowlm.config import SamplingParams
    from knowlm.engines.hf import TransformersEngine
    from knowlm.ie import evaluate

    engine = TransformersEngine.from_model(model.eval(), tokenizer, name=str(config.output_dir))
    report = evaluate.evaluate_model(
        engine,
        evaluate.read_eval_file(config.eval_ie),  # type: ignore[arg-type]
        SamplingParams(max_new_tokens=config.eval_ie_max_new_tokens),
        template=config.template,
        batch_size=config.batch_size,
    )
    with atomic_write(Path(config.output_dir) / "ie-eval.json") as f:  # type: ignore[arg-type]
        json.dump(report, f, indent=1, ensure_ascii=False)
    return report

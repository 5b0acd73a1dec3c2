"""Continued pretraining (causal LM) over prepared token datasets, with the transformers Trainer.

Datasets come from `knowlm data prepare` (or any PREFIX.bin/.idx of ours) and are mixed by weight: each
dataset contributes ``weight / sum(weights)`` of an epoch's samples, repeating (smaller sets) or
subsampling (larger ones) through seeded permutations. A held-out share of every dataset gives the
evaluation loss and perplexity. Multi-GPU and multi-node runs go through ``torchrun`` / ``deepspeed`` with
the same code (ZeRO configs in ``recipes/deepspeed``); on CPU, ``torchrun`` runs DDP over gloo.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from knowlm.config import ModelConfig, PretrainConfig
from knowlm.data.indexed import IndexedDataset
from knowlm.data.inspect import open_prepared
from knowlm.data.tokenizer import check_compatible
from knowlm.errors import InputError

log = logging.getLogger(__name__)
IGNORE = -100
_WEIGHTED = re.compile(r"^(?P<path>.+?):(?P<weight>\d+(?:\.\d*)?|\.\d+)$")


def open_data(specs: list[str]) -> list[tuple[str, IndexedDataset, float]]:
    """(name, dataset, weight) for each --data spec: a prepared directory or PREFIX[:WEIGHT]."""
    found: list[tuple[str, IndexedDataset, float]] = []
    for spec in specs:
        m = _WEIGHTED.match(spec)
        path, weight = (m["path"], float(m["weight"])) if m and not Path(spec).exists() else (spec, None)
        for name, ds, w in open_prepared(path):
            found.append((name, ds, weight if weight is not None else w))
    for name, ds, w in found:
        if not w > 0:
            raise InputError(f"--data {name}: weight must be > 0, got {w}")
        if len(ds) == 0:
            raise InputError(f"--data {ds.prefix}: the dataset is empty")
    return found


def split(n: int, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) sample ids of a dataset of ``n`` samples."""
    count = int(val_size) if val_size >= 1 else round(n * val_size)
    count = min(count, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])


def mix(pools: list[np.ndarray], weights: list[float], total: int, seed: int) -> np.ndarray:
    """``total`` (dataset, sample) pairs, dataset ``d`` drawn ``weights[d] / sum`` of the time, each
    dataset's samples taken in seeded permutations (repeated when it is drawn more often than it has)."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(weights, dtype=np.float64) / sum(weights)
    counts = np.floor(shares * total).astype(np.int64)
    counts[np.argsort(-(shares * total - counts))[: total - counts.sum()]] += 1  # largest remainders
    rows = []
    for d, (pool, count) in enumerate(zip(pools, counts, strict=True)):
        reps = -(-count // len(pool))
        ids = np.concatenate([pool[rng.permutation(len(pool))] for _ in range(reps)])[:count]
        rows.append(np.stack([np.full(count, d, dtype=np.int64), ids]))
    index = np.concatenate(rows, axis=1).T
    return index[rng.permutation(len(index))]


class MixedDataset:
    """A map-style dataset over (dataset, sample) pairs; items are ``{"input_ids": int64 array}``."""

    def __init__(self, datasets: list[IndexedDataset], index: np.ndarray) -> None:
        self.datasets, self.index = datasets, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        d, j = self.index[i]
        return {"input_ids": np.asarray(self.datasets[d][int(j)], dtype=np.int64)}


class CausalCollator:
    """Right-pads a batch to its longest sample (rounded up to a multiple of 8); padding is masked out of
    attention and loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        width += -width % 8
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[k, :n] = torch.from_numpy(r["input_ids"])
            mask[k, :n] = 1
        labels = ids.masked_fill(mask == 0, IGNORE)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def load_model(config: PretrainConfig) -> tuple[Any, Any]:
    """(model, tokenizer): pretrained weights, or a random model from the config (``from_scratch``)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from knowlm.models.loading import hf_model_dir, load_tokenizer, load_transformers
    from knowlm.models.resolve import resolve_model

    model_config = ModelConfig(
        model=config.model, dtype="float32", trust_remote_code=config.trust_remote_code
    )
    if not config.from_scratch:
        model, tokenizer = load_transformers(model_config)
        if config.tokenizer:
            tokenizer = _tokenizer(config.tokenizer, config)
    else:
        local = Path(config.model).expanduser()
        if (local / "config.json").is_file():
            path: Path = local
        else:
            path, _ = hf_model_dir(resolve_model(config.model))
        if config.tokenizer:
            tokenizer = _tokenizer(config.tokenizer, config)
        else:
            try:
                tokenizer = load_tokenizer(path, None, model_config)
            except (OSError, ValueError) as exc:
                raise InputError(f"{path} has no tokenizer ({exc}); give --tokenizer") from None
        arch = AutoConfig.from_pretrained(str(path), trust_remote_code=config.trust_remote_code)
        if getattr(arch, "vocab_size", len(tokenizer)) < len(tokenizer):
            log.info("vocab_size %s -> %s to fit the tokenizer", arch.vocab_size, len(tokenizer))
            arch.vocab_size = len(tokenizer)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(arch, name, getattr(tokenizer, name))
        model = AutoModelForCausalLM.from_config(arch, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False
    return model, tokenizer


def _tokenizer(ref: str, config: PretrainConfig) -> Any:
    from knowlm.data.tokenizer import load_tokenizer

    return load_tokenizer(ref, trust_remote_code=config.trust_remote_code)


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train; returns a summary (also written to OUTPUT_DIR/knowlm-pretrain.json)."""
    config.validate()
    import torch
    from transformers import Trainer

    from knowlm.train.loop import (
        check_paths,
        native_cpu_bf16,
        resume_checkpoint,
        run_training,
        save_final,
        trainer_callbacks,
        training_arguments,
    )

    out = Path(config.output_dir)  # type: ignore[arg-type]
    check_paths(config)
    if (config.fp16 or (config.bf16 and not native_cpu_bf16())) and not torch.cuda.is_available():
        log.warning("--bf16/--fp16: no native support on this CPU; training in float32 instead")
        config = dataclasses.replace(config, bf16=False, fp16=False)
    data = open_data(config.data)  # before the model: bad paths fail fast
    torch.manual_seed(config.seed)
    model, tokenizer = load_model(config)
    embeddings = model.get_input_embeddings().num_embeddings
    longest = max(int(ds.sizes.max()) for _, ds, _ in data)
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and longest > max_positions:
        raise InputError(f"samples of {longest} tokens exceed the model's {max_positions} positions")
    for name, ds, _ in data:
        check_compatible(ds.metadata, tokenizer, f"dataset {name} ({ds.prefix})", embeddings)

    train_pools, val_rows = [], []
    for d, (_, ds, _) in enumerate(data):
        train_ids, val_ids = split(len(ds), config.val_size, config.seed)
        train_pools.append(train_ids)
        val_rows.append(np.stack([np.full(len(val_ids), d, dtype=np.int64), val_ids]).T)
    datasets = [ds for _, ds, _ in data]
    total = sum(len(p) for p in train_pools)
    train = MixedDataset(datasets, mix(train_pools, [w for _, _, w in data], total, config.seed))
    val_index = np.concatenate(val_rows)[: config.max_eval_samples]
    val = MixedDataset(datasets, val_index) if len(val_index) else None

    resume = resume_checkpoint(config.resume, out)
    args = training_arguments(
        config,
        has_eval=val is not None,
        fp16=config.fp16,
        adam_beta2=config.adam_beta2,
        max_grad_norm=config.max_grad_norm,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
    )

    class PretrainTrainer(Trainer):
        def log(self, logs: dict[str, float], *a: Any, **kw: Any) -> None:
            if "eval_loss" in logs:
                logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))
            super().log(logs, *a, **kw)

    trainer = PretrainTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val,
        data_collator=CausalCollator(tokenizer.pad_token_id),
        callbacks=trainer_callbacks(out, config.report_to, ("eval_perplexity",)),
    )
    result, seconds = run_training(trainer, resume)
    summary: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "data": {
            name: {"prefix": str(ds.prefix), "weight": w, "samples": len(ds), "tokens": ds.num_tokens}
            for name, ds, w in data
        },
        "train_samples_per_epoch": len(train),
        "eval_samples": len(val) if val is not None else 0,
        "steps": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        "resumed_from": resume or None,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "log": [e for e in trainer.state.log_history if "loss" in e or "eval_loss" in e],
    }
    if val is not None:
        metrics = trainer.evaluate()
        summary["eval_loss"] = metrics["eval_loss"]
        summary["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    save_final(trainer, tokenizer, out, "knowlm-pretrain.json", summary)
    return summary

"""Typed settings shared by the CLI, the HTTP API and the web UI.

Each setting is defined once, here: its type, default, bounds (``ge``/``gt``/``le``) and ``help``. The CLI
flags (``knowlm.cli.args``), the HTTP API's request models (``knowlm.serve.protocol``) and the web UI's
controls (``knowlm.web.app``) are derived from these fields, and ``validate()`` checks the bounds and
collects every problem into one error that names the offending field.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knowlm.errors import collect

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with help text and optional metadata: bounds ``ge``/``gt``/``le`` (checked by
    `bound_problems`, copied into the API's models), `choices`, `metavar`, ``cli=False`` (no flag),
    ``api=False`` (not settable over HTTP: file paths the server would read), ``web_max`` (a web slider's
    upper end); `path` marks a path a recipe gives relative to itself: "file", "ref" — a model reference,
    a path only if one exists there — or "spec", a [NAME=]PATH[:WEIGHT] list."""
    if isinstance(default, list | tuple | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


BOUNDS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "ge": (">=", operator.ge),
    "gt": (">", operator.gt),
    "le": ("<=", operator.le),
}
"""Bound metadata key -> (how a message writes it, the check a value must pass)."""


def bound_problems(settings: Any) -> list[str]:
    """One message per field of the dataclass ``settings`` whose value is outside its bounds."""
    problems = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        bounds = [(key, f.metadata[key]) for key in BOUNDS if key in f.metadata]
        if value is None or isinstance(value, bool) or not bounds:
            continue
        if not all(BOUNDS[key][1](value, bound) for key, bound in bounds):
            wanted = " and ".join(f"{BOUNDS[key][0]} {bound}" for key, bound in bounds)
            problems.append(f"{f.name} must be {wanted}, got {value}")
    return problems


@dataclass
class ModelConfig:
    """Which model to load and how."""

    model: str = _opt(
        "default",
        "model reference: a local Hugging Face directory, a .gguf file, a Hub id (org/name), "
        "or 'default' for the embedded Gemma 3 270M",
        metavar="REF",
    )
    adapter: str | None = _opt(
        None, "directory of a PEFT LoRA adapter to apply on top of the model", metavar="DIR"
    )
    no_adapter: bool = _opt(
        False, "with --model default: the plain base model, without KnowLM's shipped IE adapter"
    )
    engine: str = _opt(
        "auto",
        "generation engine: auto, transformers, llamacpp, vllm or one added with register_engine; 'auto' "
        "picks llamacpp for .gguf files (when installed), else transformers",
        metavar="ENGINE",
    )
    dtype: str = _opt(
        "auto", "weight dtype; 'auto' = bfloat16/float16 on CUDA, float32 on CPU", choices=DTYPES
    )
    device: str = _opt("auto", "device: auto, cpu, cuda or cuda:N", metavar="DEVICE")
    load_in_8bit: bool = _opt(False, "quantize the weights to 8 bits with bitsandbytes (CUDA only)")
    load_in_4bit: bool = _opt(False, "quantize the weights to 4 bits (NF4) with bitsandbytes (CUDA only)")
    trust_remote_code: bool = _opt(
        False,
        "allow a Hub/local model to run its own Python code (off by default: only for models you trust)",
    )
    revision: str | None = _opt(
        None, "Hub revision (branch, tag or commit) when --model is a Hub id", metavar="REV"
    )
    n_ctx: int = _opt(
        4096,
        "context length of one sequence for the llamacpp engine (tokens); its KV cache holds n_ctx tokens "
        "for each of the batch_size sequences in flight",
    )
    threads: int | None = _opt(None, "CPU threads for the llamacpp engine and torch (default: all cores)")
    tensor_parallel_size: int = _opt(1, "GPUs to shard the model over (vllm engine)")
    batch_size: int = _opt(
        8,
        "sequences decoded together: prompts per forward pass (transformers), sequences in flight with "
        "continuous batching (llamacpp)",
    )

    def validate(self) -> None:
        problems: list[str] = []
        if not self.model or not self.model.strip():
            problems.append("--model is empty; give a directory, a .gguf file, a Hub id or 'default'")
        if not self.engine.isidentifier():
            problems.append(
                f"--engine {self.engine!r} is not an engine name (auto, transformers, llamacpp, ...)"
            )
        if self.dtype not in DTYPES:
            problems.append(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"--device {self.device!r} is not auto, cpu, cuda or cuda:N")
        if self.load_in_8bit and self.load_in_4bit:
            problems.append("--load-in-8bit and --load-in-4bit exclude each other; pick one")
        if self.n_ctx < 16:
            problems.append(f"--n-ctx must be at least 16, got {self.n_ctx}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"--threads must be at least 1, got {self.threads}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.tensor_parallel_size < 1:
            problems.append(f"--tensor-parallel-size must be at least 1, got {self.tensor_parallel_size}")
        collect(problems, "invalid model settings")


@dataclass
class SamplingParams:
    """Decoding settings, the same for every engine. temperature 0 means greedy decoding."""

    max_new_tokens: int = _opt(256, "maximum number of tokens to generate", ge=1, web_max=1024)
    temperature: float = _opt(0.0, "sampling temperature; 0 = greedy (deterministic)", ge=0, web_max=2)
    top_p: float = _opt(
        1.0, "nucleus sampling: keep the smallest token set whose probability reaches top_p", gt=0, le=1
    )
    top_k: int = _opt(0, "sample only from the k most likely tokens; 0 = no limit", ge=0, web_max=200)
    num_beams: int = _opt(
        1, "beam search width; 1 = no beam search (transformers engine only)", ge=1, web_max=8
    )
    repetition_penalty: float = _opt(
        1.0, "penalty > 1 discourages repeating tokens; 1 = off", gt=0, web_max=2
    )
    stop: list[str] = _opt(
        [], "stop generating when this string appears (repeatable); it is not returned", web=False
    )
    seed: int | None = _opt(None, "random seed for sampling, for reproducible outputs", web=False)
    json_schema: dict[str, Any] | None = _opt(
        None,
        "constrain the output to JSON valid for this JSON schema (set by --constrained)",
        cli=False,
        api=False,
        web=False,
    )
    grammar: str | None = _opt(
        None,
        "constrain the output to this grammar (llguidance's Lark syntax; set by --constrained for grounded "
        "extraction)",
        cli=False,
        api=False,
        web=False,
    )
    distinct_items: bool = _opt(
        False,
        "with a constraint: a list whose last item repeats an earlier one must close (set for extraction "
        "answers, which a small model may otherwise loop in until the token limit)",
        cli=False,
        api=False,
        web=False,
    )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def validate(self) -> SamplingParams:
        problems = bound_problems(self)
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            problems.append("json_schema must be a JSON schema object")
        if self.grammar is not None and not isinstance(self.grammar, str):
            problems.append("grammar must be a string (llguidance's Lark syntax)")
        if self.grammar is not None and self.json_schema is not None:
            problems.append("give a JSON schema or a grammar, not both")
        if (self.json_schema is not None or self.grammar is not None) and self.num_beams > 1:
            problems.append("constrained decoding does not combine with beam search; use num_beams 1")
        if any(not s for s in self.stop):
            problems.append("stop strings must not be empty")
        collect(problems, "invalid decoding settings")
        return self

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)


def records_per_call(batch_size: int) -> int:
    """How many records a resumable loop (extract, eval, generate, corpus runs) hands the engine at once:
    several times ``batch_size``, so sequences that finish early are replaced at once instead of waiting
    for the slowest of their batch, while an interrupted run loses little."""
    return 4 * batch_size


LANGS = ("auto", "zh", "en")


@dataclass
class ExtractConfig:
    """What to extract and how to prompt for it."""

    task: str = _opt("ner", "IE task: ner, re, spo, ee, eet, eea or kg")
    schema: str | None = _opt(
        None,
        "what to extract: comma-separated items (e.g. 'person,organization'; see docs/extraction.md for "
        "each task's form) or a JSON list",
    )
    schema_file: str | None = _opt(
        None,
        "read the schema from a .json file (a list) or a text file (an item a line)",
        metavar="FILE",
        api=False,
    )
    lang: str = _opt(
        "auto", "instruction language; auto = Chinese when the text is mostly Chinese", choices=LANGS
    )
    prompt_format: str = _opt(
        "auto",
        "instruction format: auto (the model's own choice, else oneke), oneke (OneKE/IEPile JSON), "
        "oneke-text-first (the input before the schema: a text's prompts share its prefill), knowlm-tuple, "
        "knowlm-colon or knowlm-json (KnowLM's prompt families)",
    )
    template: str = _opt(
        "auto", "prompt template: auto (chat template if the model has one, else alpaca), alpaca, chat, raw"
    )
    instructions: str | None = _opt(
        None,
        "instruction texts to prompt with: a JSON/YAML file {format: {task: {zh, en: text}}} (default: the "
        "model's own ie_instructions.json or GGUF metadata, else the built-in texts)",
        metavar="FILE",
        api=False,
    )
    instructions_from: str | None = _opt(
        None,
        "take the instruction texts from your own OneKE-format records (their 'instruction' field), as a "
        "model trained on them expects",
        metavar="FILE",
        api=False,
    )
    schema_batch_size: int | None = _opt(
        None,
        "schema items per prompt; large schemas are split (default: the model's own choice — the default "
        "model asks a schema of up to 4 relations one relation a prompt — else per task, as IEPile)",
        ge=1,
    )
    constrained: bool = _opt(
        True,
        "constrain generation to JSON valid for the schema, lists closing when they repeat an item (the "
        "oneke formats; the knowlm-* formats decode freely); --no-constrained: free decoding",
    )
    grounded: bool = _opt(
        True,
        "with constraints (the default): every extracted string must be a piece of the input text, enforced "
        "while decoding (--no-grounded: any string, only the JSON shape is enforced)",
    )
    drop_ungrounded: bool = _opt(False, "drop items whose text does not occur in the input")
    min_confidence: float = _opt(
        0.0,
        "keep only items whose confidence (the model's probability of the tokens that wrote them, 0-1) is "
        "at least this; items without a confidence (an engine that gives none) are dropped too when above 0",
        ge=0,
        le=1,
    )
    max_chunk_tokens: int = _opt(
        1024, "split longer inputs on sentence boundaries into chunks of this many tokens", ge=16
    )

    def validate(self) -> ExtractConfig:
        problems = bound_problems(self)
        if self.lang not in LANGS:
            problems.append(f"--lang {self.lang!r} is not one of {', '.join(LANGS)}")
        if self.instructions and self.instructions_from:
            problems.append("give --instructions FILE or --instructions-from FILE, not both")
        if self.schema and self.schema_file:
            problems.append("give --schema or --schema-file, not both")
        collect(problems, "invalid extraction settings")
        return self


@dataclass
class ServeConfig:
    """The HTTP server: where it listens, who may call it, and how much it accepts."""

    host: str = _opt(
        "127.0.0.1",
        "address to bind; the default keeps the server private to this machine (0.0.0.0 exposes it)",
    )
    port: int = _opt(8000, "port to listen on")
    api_key: str | None = _opt(
        None, "require 'Authorization: Bearer KEY' on every endpoint but /health (default: $KNOWLM_API_KEY)"
    )
    served_model_name: str | None = _opt(None, "model id the OpenAI API reports (default: the --model value)")
    max_batch_size: int = _opt(8, "prompts merged into one engine call (dynamic batching; 1 = off)")
    batch_wait_ms: float = _opt(10.0, "how long the first request of a batch waits for others (milliseconds)")
    max_queue: int = _opt(64, "prompts waiting at most; beyond it requests get 503 with Retry-After")
    max_body_bytes: int = _opt(1_000_000, "largest request body accepted (bytes); larger ones get 413")
    max_prompt_tokens: int = _opt(4096, "longest prompt accepted (tokens); longer ones get 400")
    max_tokens_limit: int = _opt(2048, "largest max_tokens a request may ask for")
    cors_origins: list[str] = _opt(
        [], "allow browser calls from this origin (repeatable; CORS is off by default)"
    )

    def validate(self) -> ServeConfig:
        problems: list[str] = []
        if not 0 < self.port < 65536:
            problems.append(f"--port must be in 1..65535, got {self.port}")
        for name in (
            "max_batch_size",
            "max_queue",
            "max_body_bytes",
            "max_prompt_tokens",
            "max_tokens_limit",
        ):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            problems.append(f"--batch-wait-ms must be >= 0, got {self.batch_wait_ms}")
        collect(problems, "invalid server settings")
        return self


@dataclass
class TrainingSchedule:
    """The training-loop settings both trainers share (`FinetuneConfig`, `PretrainConfig`): where outputs
    go, how long, the optimizer schedule, batching, checkpoints, logs and multi-GPU. The subclasses
    change defaults with `_default`, so each setting's help text stays in one place."""

    output_dir: str | None = _opt(
        None, "where checkpoints, logs and the trained weights go", metavar="DIR", path="file"
    )
    seed: int = _opt(42, "random seed (data split and order, initialization)")
    val_size: float = _opt(
        0.05, "validation share (< 1) or count (>= 1) held out for the evaluation loss; 0 = none"
    )
    epochs: float = _opt(1.0, "passes over the training data (ignored when --max-steps is set)")
    max_steps: int = _opt(-1, "stop after this many optimizer steps (-1 = use --epochs)")
    learning_rate: float = _opt(2e-4, "peak learning rate")
    lr_scheduler: str = _opt(
        "cosine", "learning-rate schedule: cosine, linear, constant, constant_with_warmup"
    )
    warmup_ratio: float = _opt(0.03, "share of the steps spent warming up the learning rate")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    batch_size: int = _opt(4, "examples per device per step")
    grad_accum: int = _opt(
        1, "gradient accumulation steps (effective batch = batch_size x grad_accum x devices)"
    )
    gradient_checkpointing: bool = _opt(False, "recompute activations in the backward pass to save memory")
    bf16: bool = _opt(False, "bfloat16 mixed precision (CPUs with AVX512-BF16/AMX, Ampere+ GPUs)")
    logging_steps: int = _opt(5, "log the training loss every N steps")
    eval_steps: int = _opt(50, "evaluate on the validation split every N steps")
    save_steps: int = _opt(50, "save a checkpoint every N steps")
    save_total_limit: int = _opt(2, "keep at most this many checkpoints")
    resume: str | None = _opt(
        None, "resume from a checkpoint directory, or 'auto' for the latest in --output-dir"
    )
    report_to: str = _opt("csv", "logs: csv, tensorboard, csv,tensorboard or none")
    deepspeed: str | None = _opt(
        None,
        "a DeepSpeed JSON config, e.g. recipes/deepspeed/zero3.json (multi-GPU; launch with deepspeed or "
        "torchrun)",
        metavar="FILE",
        path="file",
    )
    trust_remote_code: bool = _opt(False, "allow the model's own Python code (only for models you trust)")

    def schedule_problems(self) -> list[str]:
        """Problems with the shared settings (the subclasses add their own)."""
        problems: list[str] = []
        if not self.output_dir:
            problems.append("--output-dir is required")
        for name in ("batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            problems.append(f"--learning-rate must be > 0, got {self.learning_rate}")
        if self.max_steps == -1 and self.epochs <= 0:
            problems.append("set --epochs > 0 or --max-steps")
        if self.lr_scheduler not in ("cosine", "linear", "constant", "constant_with_warmup"):
            problems.append(
                f"--lr-scheduler {self.lr_scheduler!r} is not cosine, linear, constant or constant_with_warmup"
            )
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.val_size < 0:
            problems.append(f"--val-size must be >= 0, got {self.val_size}")
        unknown = set(self.report_to.split(",")) - {"csv", "tensorboard", "none"}
        if unknown:
            problems.append(
                f"--report-to: unknown {', '.join(sorted(unknown))} (use csv, tensorboard or none)"
            )
        return problems


def _default(name: str, default: Any) -> Any:
    """A `TrainingSchedule` setting with another default (same help text and metadata)."""
    metadata = dict(TrainingSchedule.__dataclass_fields__[name].metadata)
    return _opt(default, metadata.pop("help"), **metadata)


@dataclass
class FinetuneConfig(TrainingSchedule):
    """Instruction tuning (LoRA, QLoRA or full). A YAML recipe holds these same keys."""

    model: str = _opt("default", "base model reference (as --model elsewhere)", metavar="REF", path="ref")
    data: str | None = _opt(
        None,
        "training data: JSON/JSONL records (alpaca, OneKE or chat messages)",
        metavar="FILE",
        path="file",
    )
    data_format: str = _opt("auto", "record format: auto, alpaca (instruction/input/output), oneke, messages")
    template: str = _opt(
        "auto", "prompt template: auto (chat template if the model has one, else alpaca), alpaca, chat, raw"
    )
    cutoff_len: int = _opt(512, "maximum tokens per example; longer answers are truncated and counted")
    train_on_inputs: bool = _opt(
        False, "also learn to predict the prompt tokens (off: only the answer counts)"
    )
    packing: bool = _opt(False, "pack several short examples into one row (faster on mixed-length data)")
    group_by_length: bool = _opt(True, "batch examples of similar length together (less padding, faster)")
    method: str = _opt("lora", "lora, qlora (4-bit base, CUDA only) or full (all weights)")
    init_adapter: str | None = _opt(
        None,
        "continue training this LoRA adapter (a PEFT directory, or 'default' for the IE adapter shipped with "
        "the default model); its rank, targets and layers replace the --lora-* settings",
        metavar="DIR",
        path="ref",
    )
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA alpha (the update is scaled by alpha / r)")
    lora_dropout: float = _opt(0.05, "dropout on the LoRA input")
    target_modules: str = _opt(
        "auto",
        "modules to adapt: auto (per architecture), all-linear, or comma-separated names (q_proj,v_proj)",
    )
    freeze_layers: int = _opt(
        0,
        "leave the lowest N transformer layers untouched (no LoRA there / frozen in full fine-tuning): the "
        "backward pass stops at the first trained layer, so a step costs less",
    )
    freeze_embeddings: bool = _opt(
        False, "full fine-tuning: keep the input embeddings (and a tied output layer) frozen"
    )
    answer_only_logits: bool = _opt(
        True, "run the output layer only at answer positions (much faster with large vocabularies)"
    )
    eval_ie: str | None = _opt(
        None,
        "after training, run knowlm eval on this OneKE dev file and save the report",
        metavar="FILE",
        path="file",
    )
    eval_ie_max_new_tokens: int = _opt(256, "max new tokens per answer for --eval-ie")
    epochs: float = _default("epochs", 3.0)

    def validate(self) -> FinetuneConfig:
        problems: list[str] = []
        if not self.data:
            problems.append("--data is required (a JSON/JSONL file of training records)")
        if self.method not in ("lora", "qlora", "full"):
            problems.append(f"--method {self.method!r} is not lora, qlora or full")
        if self.data_format not in ("auto", "alpaca", "oneke", "messages"):
            problems.append(f"--data-format {self.data_format!r} is not auto, alpaca, oneke or messages")
        if self.cutoff_len < 8:
            problems.append(f"--cutoff-len must be at least 8, got {self.cutoff_len}")
        for name in ("lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.freeze_layers < 0:
            problems.append(f"--freeze-layers must be >= 0, got {self.freeze_layers}")
        if self.freeze_embeddings and self.method != "full":
            problems.append("--freeze-embeddings applies to --method full (LoRA never trains the embeddings)")
        if self.init_adapter and self.method == "full":
            problems.append("--init-adapter continues a LoRA adapter: use it with --method lora or qlora")
        if self.val_size and self.eval_steps > 0 and self.save_steps % self.eval_steps:
            problems.append(  # the Trainer keeps the best checkpoint only at evaluation steps
                f"--save-steps ({self.save_steps}) must be a multiple of --eval-steps ({self.eval_steps}) so "
                "the best checkpoint can be kept"
            )
        problems += self.schedule_problems()
        collect(problems, "invalid fine-tuning settings")
        return self


# the dataset formats `knowlm data convert-ie` (knowlm.ie.convert) reads
DEDUP_MODES = ("near", "exact", "none")
NORMALIZATIONS = ("NFC", "NFKC", "none")


@dataclass
class PrepareConfig:
    """Pretraining data preparation (`knowlm data prepare`). A YAML config holds these same keys."""

    source: list[str] = _opt(
        [],
        "a corpus: [NAME=]GLOB[:WEIGHT], e.g. wiki=data/wiki/*.jsonl.gz:0.7 (repeatable; .txt, .jsonl, "
        ".parquet, optionally .gz/.zst). WEIGHT is the source's share when `knowlm pretrain` mixes them",
        metavar="SPEC",
        path="spec",
    )
    out: str | None = _opt(
        None,
        "output directory: NAME.bin/.idx per source and manifest.json",
        metavar="DIR",
        path="file",
    )
    tokenizer: str = _opt(
        "default",
        "tokenizer: a model directory, a Hub id, or 'default' (the embedded model's)",
        path="ref",
        metavar="REF",
    )
    text_mode: str = _opt(
        "line",
        "text files: 'line' (a document a line) or 'file' (a file a document)",
        choices=("line", "file"),
    )
    field: str = _opt("text", "JSONL/Parquet: the field holding the text")
    template: str | None = _opt(
        None, "JSONL/Parquet: build the text from fields, e.g. '{title}\\n{content}' or '{input}\\n{output}'"
    )
    seq_length: int = _opt(1024, "tokens per sample at most (BOS/EOS included)")
    add_bos: bool = _opt(True, "start every sample with the tokenizer's BOS token")
    add_eos: bool = _opt(True, "end every document's last sample with the EOS token")
    keep_newlines: bool = _opt(
        True, "keep line breaks (each ends a sentence); off: join hard-wrapped lines first"
    )
    extend_backward: bool = _opt(
        False,
        "let a sample that is not full start earlier, over the previous sample's sentences (KnowLM's "
        "greedy): fuller samples, but those sentences are seen twice",
    )
    normalize: str = _opt(
        "NFC", "Unicode normalization (NFKC also folds full-width forms)", choices=NORMALIZATIONS
    )
    min_chars: int = _opt(20, "drop documents shorter than this (characters, after cleaning)")
    max_chars: int = _opt(1_000_000, "drop documents longer than this (characters)")
    max_symbol_ratio: float = _opt(
        0.3, "drop documents whose share of symbol characters (not letters, digits or punctuation) is higher"
    )
    max_repeated_lines: float = _opt(0.3, "drop documents whose share of duplicate lines is higher")
    max_dup_ngrams: float = _opt(
        0.3, "drop documents whose share of repeated 10-token n-grams is higher (boilerplate, spam)"
    )
    blocklist: str | None = _opt(
        None,
        "drop documents containing any phrase of this file (one a line; case-insensitive)",
        metavar="FILE",
        path="file",
    )
    dedup: str = _opt(
        "near", "remove duplicates across all sources: near (MinHash LSH), exact, none", choices=DEDUP_MODES
    )
    dedup_threshold: float = _opt(0.8, "near duplicates: estimated Jaccard similarity of 5-token shingles")
    dedup_num_perm: int = _opt(128, "near duplicates: MinHash permutations")
    workers: int = _opt(1, "tokenizing processes; the output is the same for any number")
    batch_docs: int = _opt(512, "documents sent to a worker at a time")
    overwrite: bool = _opt(False, "discard an earlier (finished or partial) preparation in --out")

    def validate(self) -> PrepareConfig:
        problems: list[str] = []
        if not self.source:
            problems.append("give at least one --source [NAME=]GLOB[:WEIGHT]")
        if not self.out:
            problems.append("--out DIR is required")
        if self.seq_length < 4:
            problems.append(f"--seq-length must be at least 4, got {self.seq_length}")
        if self.min_chars < 0 or self.max_chars < max(self.min_chars, 1):
            problems.append("need 0 <= --min-chars <= --max-chars")
        for name in ("max_symbol_ratio", "max_repeated_lines", "max_dup_ngrams"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.dedup_threshold < 1:
            problems.append(f"--dedup-threshold must be in (0, 1), got {self.dedup_threshold}")
        if self.dedup_num_perm < 16:
            problems.append(f"--dedup-num-perm must be at least 16, got {self.dedup_num_perm}")
        if self.workers < 1 or self.batch_docs < 1:
            problems.append("--workers and --batch-docs must be at least 1")
        if self.dedup not in DEDUP_MODES:
            problems.append(f"--dedup {self.dedup!r} is not one of {', '.join(DEDUP_MODES)}")
        if self.normalize not in NORMALIZATIONS:
            problems.append(f"--normalize {self.normalize!r} is not one of {', '.join(NORMALIZATIONS)}")
        collect(problems, "invalid data preparation settings")
        return self


@dataclass
class PretrainConfig(TrainingSchedule):
    """Continued pretraining (causal LM) over prepared datasets. A YAML recipe holds these same keys."""

    model: str = _opt(
        "default",
        "model to continue from (as --model elsewhere), or a config to start",
        metavar="REF",
        path="ref",
    )
    from_scratch: bool = _opt(
        False, "initialize random weights from --model's config.json instead of loading its weights"
    )
    tokenizer: str | None = _opt(
        None, "tokenizer (default: the model's; must match the data's)", metavar="REF", path="ref"
    )
    data: list[str] = _opt(
        [],
        "prepared data: a `knowlm data prepare` directory (its sources with their weights) or "
        "PREFIX[:WEIGHT] (repeatable)",
        metavar="PATH",
        path="spec",
    )
    max_eval_samples: int = _opt(512, "evaluate on at most this many held-out samples")
    adam_beta2: float = _opt(0.95, "AdamW beta2")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm")
    fp16: bool = _opt(False, "float16 mixed precision (older GPUs)")
    dataloader_workers: int = _opt(0, "DataLoader worker processes")
    val_size: float = _default("val_size", 0.01)
    learning_rate: float = _default("learning_rate", 3e-4)
    warmup_ratio: float = _default("warmup_ratio", 0.01)
    weight_decay: float = _default("weight_decay", 0.1)
    batch_size: int = _default("batch_size", 8)
    logging_steps: int = _default("logging_steps", 10)
    eval_steps: int = _default("eval_steps", 100)
    save_steps: int = _default("save_steps", 100)
    save_total_limit: int = _default("save_total_limit", 3)
    report_to: str = _default("report_to", "csv,tensorboard")

    def validate(self) -> PretrainConfig:
        problems: list[str] = []
        if not self.data:
            problems.append("--data is required (a prepared directory or PREFIX[:WEIGHT])")
        if self.max_eval_samples < 1:
            problems.append(f"--max-eval-samples must be at least 1, got {self.max_eval_samples}")
        if self.bf16 and self.fp16:
            problems.append("--bf16 and --fp16 exclude each other")
        problems += self.schedule_problems()
        collect(problems, "invalid pretraining settings")
        return self

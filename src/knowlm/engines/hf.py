"""The transformers engine: batched generation (left padding), stop strings, streaming, beams."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.base import (
    Completion,
    StopStreamer,
    find_stop,
    render_with_tokenizer,
    special_stop_ids,
    special_token,
    token_pieces,
)
from knowlm.errors import InputError


class TransformersEngine:
    """Generation with a transformers causal LM on CPU or GPU."""

    name = "transformers"

    def __init__(self, config: ModelConfig) -> None:
        from knowlm.models.loading import load_transformers, model_instructions

        if config.threads:
            torch.set_num_threads(config.threads)
        self.model, self.tokenizer = load_transformers(config)
        self.ie_instructions = model_instructions(config)
        self.model_name = config.model
        self.batch_size = config.batch_size
        self._lock = threading.Lock()  # one generate() at a time on the model
        self._llg_tokenizer: Any = None
        self._commas: Any = None

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str = "model", batch_size: int = 8) -> Any:
        """Wrap an already loaded model and tokenizer (tests, training loops)."""
        engine = cls.__new__(cls)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        engine.model, engine.tokenizer, engine.model_name = model.eval(), tokenizer, name
        engine.batch_size = batch_size
        engine.ie_instructions = None
        engine._lock = threading.Lock()
        engine._llg_tokenizer = engine._commas = None
        return engine

    # -- protocol -------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        params.validate()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths pad less
        results: dict[int, Completion] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, completion in zip(
                chunk, self._generate_batch([prompts[i] for i in chunk], params), strict=True
            ):
                results[i] = completion
        return [results[i] for i in range(len(prompts))]

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        params.validate()
        if params.num_beams > 1:
            raise InputError("streaming does not support beam search; use num_beams 1")
        inputs = self._encode([prompt])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        kwargs = self._generate_kwargs(inputs, params, cancel)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self._seed(params)
                    self.model.generate(**kwargs, streamer=streamer)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        stopper = StopStreamer(params.stop)
        try:
            for delta in streamer:
                piece = stopper.feed(delta)
                if piece:
                    yield piece
                if stopper.stopped:
                    break
            tail = stopper.flush()
            if tail:
                yield tail
        finally:
            cancel.set()  # the consumer stopped early or the stop string was seen
            thread.join()
        if errors:
            raise errors[0]

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        return render_with_tokenizer(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    # -- internals ------------------------------------------------------------------------------

    def _encode(self, prompts: Sequence[str]) -> Any:
        return self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(self.model.device)

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _ll_tokenizer(self) -> Any:
        """llguidance's view of the tokenizer (built once: seconds for a large vocabulary)."""
        if self._llg_tokenizer is None:
            from knowlm.engines.constrain import llguidance_module

            llguidance_module()
            import llguidance.hf

            vocab = self.model.get_output_embeddings().weight.shape[0]
            eos = self.model.generation_config.eos_token_id
            eos = eos if eos is not None else self.tokenizer.eos_token_id
            self._llg_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=vocab, eos_token=eos)
        return self._llg_tokenizer

    def _comma_tokens(self) -> Any:
        """The ids of the tokens whose text holds a comma (found once)."""
        if self._commas is None:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])  # byte tokens too
            self._commas = torch.tensor([i for i, t in enumerate(texts) if "," in t], dtype=torch.long)
        return self._commas

    def _decode_one(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def _seed(self, params: SamplingParams) -> None:
        if params.seed is not None:
            torch.manual_seed(params.seed)

    def _generate_kwargs(
        self, inputs: Any, params: SamplingParams, cancel: threading.Event | None
    ) -> dict[str, Any]:
        base = self.model.generation_config
        sample = not params.greedy
        eos = base.eos_token_id if base.eos_token_id is not None else self.tokenizer.eos_token_id
        stop_ids = special_stop_ids(params.stop, partial(special_token, self.tokenizer))
        if stop_ids:  # special tokens are skipped when decoding, so stop strings cannot see them
            eos = sorted({*(eos if isinstance(eos, list) else [eos] if eos is not None else []), *stop_ids})
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else 1.0,
            top_p=params.top_p if sample else 1.0,
            top_k=(params.top_k or None) if sample else None,
            num_beams=params.num_beams,
            repetition_penalty=params.repetition_penalty,
            bos_token_id=base.bos_token_id,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        from knowlm.engines.constrain import TorchMaskProcessor, compiled_grammar

        processors = LogitsProcessorList()
        grammar = compiled_grammar(params)
        if grammar is not None:
            guard = (
                {"comma_tokens": self._comma_tokens(), "piece": self._decode_one}
                if params.distinct_items
                else {}
            )
            processors.append(
                TorchMaskProcessor(self._ll_tokenizer(), grammar, inputs["input_ids"].shape[0], **guard)
            )
        criteria: list[StoppingCriteria] = []
        if params.stop:
            criteria.append(_StopStrings(self.tokenizer, params.stop, inputs["input_ids"].shape[1]))
        if cancel is not None:
            criteria.append(_Cancelled(cancel))
        return {
            **inputs,
            "generation_config": config,
            "stopping_criteria": StoppingCriteriaList(criteria),
            "logits_processor": processors,
        }

    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[Completion]:
        inputs = self._encode(prompts)
        kwargs = self._generate_kwargs(inputs, params, None)
        scored = params.num_beams == 1  # beams reorder rows: their per-step logits are not one row's
        with self._lock, torch.inference_mode():
            self._seed(params)
            kwargs["generation_config"].update(return_dict_in_generate=True, output_logits=scored)
            output = self.model.generate(**kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        generated = output.sequences[:, prompt_len:]
        chosen = None
        if scored and generated.shape[1]:  # each chosen token's log-probability under the raw logits
            logits = torch.stack(output.logits, dim=1).float()
            chosen = (logits.log_softmax(-1).gather(-1, generated[..., None])[..., 0]).tolist()
        eos = kwargs["generation_config"].eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        completions = []
        for r, (row, mask) in enumerate(zip(generated.tolist(), inputs["attention_mask"], strict=True)):
            n_tokens = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
            ended = n_tokens < len(row) or (bool(row) and row[-1] in eos_ids)
            text = self.tokenizer.decode(row[:n_tokens], skip_special_tokens=True)
            logprobs = None if chosen is None else token_pieces(self._decode, row[:n_tokens], chosen[r])
            cut = find_stop(text, params.stop)
            if cut is not None:
                text, ended = text[:cut], True
            completions.append(
                Completion(text, int(mask.sum()), n_tokens, "stop" if ended else "length", logprobs)
            )
        return completions


class _StopStrings(StoppingCriteria):
    """Stopping criterion: a row is done once its generated text contains a stop string."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [find_stop(t, self.stops) is not None for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _Cancelled(StoppingCriteria):
    """Stopping criterion: stop every row once the event is set (client went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )

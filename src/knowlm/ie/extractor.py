"""The extraction pipeline: text + schema -> prompts -> engine -> parsed, merged, grounded items."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knowlm.config import ExtractConfig, ModelConfig, SamplingParams
from knowlm.engines.base import Completion, Engine, chat_renderer, generate_each
from knowlm.errors import InputError
from knowlm.ie.confidence import passes, set_confidences
from knowlm.ie.formats import detect_language, get_format
from knowlm.ie.grammar import answer_params
from knowlm.ie.ground import ground
from knowlm.ie.instructions import Instructions, instructions_from_records, load_instructions, lookup
from knowlm.ie.results import Entity, Event, Item, Triple, item_to_dict
from knowlm.ie.schema import Schema
from knowlm.ie.split import chunk_text
from knowlm.ie.tasks import Task, get_task, load_schema_file, parse_schema
from knowlm.prompts import get_template


@dataclass
class ExtractionResult:
    """What was extracted from one text, and how cleanly the model's answers could be read."""

    text: str
    task: str
    items: list[Item] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    """The raw model answers (one per chunk and schema batch)."""
    parsed: bool = True
    """Every answer was complete and shaped as the format asks (e.g. JSON keyed by schema items)."""
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Types, relations or roles the model answered that are not in the schema (dropped)."""
    malformed: int = 0
    ungrounded: int = 0
    """Items whose text does not occur in the input (dropped with drop_ungrounded)."""

    @property
    def entities(self) -> list[Entity]:
        return [i for i in self.items if isinstance(i, Entity)]

    @property
    def triples(self) -> list[Triple]:
        return [i for i in self.items if isinstance(i, Triple)]

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    def to_dict(self, *, outputs: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "results": [item_to_dict(i) for i in self.items],
            "parse": {
                "ok": self.parsed,
                "problems": self.problems,
                "unknown": self.unknown,
                "malformed": self.malformed,
                "ungrounded": self.ungrounded,
            },
        }
        if outputs:
            out["outputs"] = self.outputs
        return out


def resolve_schema(config: ExtractConfig) -> Schema:
    if config.schema_file:
        return load_schema_file(config.task, config.schema_file)
    if not config.schema:
        raise InputError(
            "no schema: say what to extract, e.g. 'person,organization' (each task's forms: docs/extraction.md)"
        )
    return parse_schema(config.task, config.schema, source="--schema")


def how_to_ask(
    task: Task,
    items: int,
    preferred: dict[str, Any],
    *,
    prompt_format: str = "auto",
    schema_batch_size: int | None = None,
) -> tuple[str, int]:
    """The prompt format and the schema items a prompt for a schema of ``items`` items: the given ones,
    else the model's own choice (``preferred``: its engine's ``ie_options`` for the task): a small schema
    asked one item a prompt; a large one one item a prompt with the text first (a text's prompts share
    its prefill); else the task's batches."""
    large = items > preferred.get("text_first_over", items)
    if prompt_format == "auto":
        prompt_format = "oneke-text-first" if large else preferred.get("prompt_format", "oneke")
    if schema_batch_size is None:
        small = items <= preferred.get("ask_each_up_to", 0)
        schema_batch_size = 1 if large or small else task.batch_size
    return prompt_format, schema_batch_size


class Extractor:
    """Schema-driven extraction with an LLM.

    >>> extractor = Extractor(model="default", task="ner", schema="person,organization,location")
    >>> extractor.extract("Tim Cook leads Apple in Cupertino.").entities

    ``instruction_texts`` gives the instruction texts as loaded (`knowlm.ie.instructions`), instead of the
    ``instructions``/``instructions_from`` files of the options or the model's own.
    """

    def __init__(
        self,
        model: str | Engine = "default",
        task: str = "ner",
        schema: Any = None,
        *,
        params: SamplingParams | None = None,
        model_config: ModelConfig | None = None,
        instruction_texts: Instructions | None = None,
        **options: Any,
    ) -> None:
        text_schema = schema if isinstance(schema, str) else None
        self.config = ExtractConfig(task=task, schema=text_schema, **options).validate()
        self.task = get_task(task)
        if schema is None or text_schema is not None:
            self.schema = resolve_schema(self.config)
        else:  # a list of items, or a Schema
            self.schema = parse_schema(self.task.name, schema)
        self.params = (params or SamplingParams()).validate()
        if isinstance(model, str):
            from knowlm.engines import create_engine

            model_config = dataclasses.replace(model_config or ModelConfig(), model=model)
            self.engine: Engine = create_engine(model_config)
        else:
            self.engine = model
        self.template = get_template(self.config.template, chat_renderer(self.engine))
        self.instructions = instruction_texts if instruction_texts is not None else self._instructions()
        preferred = (getattr(self.engine, "ie_options", None) or {}).get(self.task.name, {})
        fmt, size = how_to_ask(
            self.task,
            len(self.schema.items),
            preferred,
            prompt_format=self.config.prompt_format,
            schema_batch_size=self.config.schema_batch_size,
        )
        self.format = get_format(fmt, self.task.name)
        self.batches = self.schema.batches(size)

    @classmethod
    def from_config(
        cls,
        model: str | Engine,
        config: ExtractConfig,
        *,
        schema: Any = None,
        params: SamplingParams | None = None,
        instruction_texts: Instructions | None = None,
    ) -> Extractor:
        """The extractor ``config`` describes (its task, schema and options); ``schema`` (items, or a
        `Schema`) replaces the config's schema string when given."""
        options = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("task", "schema")}
        if schema is not None:
            options["schema_file"] = None
        return cls(
            model,
            config.task,
            schema if schema is not None else config.schema,
            params=params,
            instruction_texts=instruction_texts,
            **options,
        )

    def _instructions(self) -> Instructions | None:
        """The instruction texts to prompt with: given by the user, else the model's own (None: built-in)."""
        if self.config.instructions:
            return load_instructions(self.config.instructions)
        if self.config.instructions_from:
            return instructions_from_records(self.config.instructions_from)
        return getattr(self.engine, "ie_instructions", None)

    def extract(self, text: str) -> ExtractionResult:
        return self.extract_many([text])[0]

    def prompts_for(self, text: str) -> list[tuple[int, str, str]]:
        """(schema batch index, prompt, chunk) for every chunk of ``text`` and every schema batch."""
        lang = detect_language(text) if self.config.lang == "auto" else self.config.lang
        chunks = chunk_text(text, self.config.max_chunk_tokens, self.engine.count_tokens)
        prompts = []
        for b, batch in enumerate(self.batches):
            for chunk in chunks:
                own = lookup(self.instructions, self.format.texts or self.format.name, self.task.name, lang)
                instruction = self.format.build(self.task, batch, chunk.text, lang, own)
                prompts.append(
                    (b, self.template.format(instruction.instruction, instruction.input), chunk.text)
                )
        return prompts

    def extract_many(self, texts: Sequence[str]) -> list[ExtractionResult]:
        """Extract from several texts: every prompt (each chunk of each text under each schema batch) goes
        to the engine in one call, so an engine that decodes many sequences at once has them all in flight."""
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"text {i}: expected a non-empty string")
        jobs = [(d, b, p, chunk) for d, text in enumerate(texts) for b, p, chunk in self.prompts_for(text)]
        shapes = [self.task.answer_json_schema(batch) for batch in self.batches]
        params = [self._params(shapes[b], chunk) for _, b, _, chunk in jobs]
        done = generate_each(self.engine, [prompt for _, _, prompt, _ in jobs], params)
        results = [ExtractionResult(text, self.task.name) for text in texts]
        for j, (d, b, _, _) in enumerate(jobs):
            self._read(results[d], done[j], self.batches[b])
        for result in results:
            self._finish(result)
        return results

    def _params(self, shape: dict[str, Any], chunk: str) -> SamplingParams:
        """The decoding settings of one prompt: free (unconstrained, or a format whose answers are not
        JSON), constrained to the answer's JSON shape, or grounded (a grammar whose strings must be pieces
        of ``chunk``)."""
        if not (self.config.constrained and self.format.keyed_json):
            return self.params
        return answer_params(self.params, shape, chunk, grounded=self.config.grounded)

    def _read(self, result: ExtractionResult, completion: Completion, batch: Schema) -> None:
        output = completion.text
        result.outputs.append(output)
        read = self.format.read(output)
        if not (read.found and read.complete):
            result.parsed = False
        result.problems.extend(p for p in read.problems if p not in result.problems)
        if read.value is None:
            return
        items, reading = self.task.read_answer(read.value, batch)
        if not reading.matched:
            result.parsed = False
            result.problems.append("the answer is not keyed by the schema's items")
        set_confidences(output, completion.logprobs, items)
        result.items.extend(items)
        result.problems.extend(p for p in reading.problems if p not in result.problems)
        result.unknown.extend(reading.unknown)
        result.malformed += reading.malformed

    def _finish(self, result: ExtractionResult) -> None:
        unique: dict[tuple[Any, ...], Item] = {}
        for item in result.items:
            key = (
                type(item).__name__,
                *item.key(),
                *(item.argument_keys() if isinstance(item, Event) else ()),
            )
            kept = unique.setdefault(key, item)
            if (item.confidence or 0.0) > (kept.confidence or 0.0):  # said twice: its surer answer counts
                kept.confidence = item.confidence
        items = ground(result.text, list(unique.values()))
        result.ungrounded = sum(1 for item in items if not item.grounded)
        if self.config.drop_ungrounded:
            items = [i for i in items if i.grounded]
        result.items = [i for i in items if passes(i.confidence, self.config.min_confidence)]

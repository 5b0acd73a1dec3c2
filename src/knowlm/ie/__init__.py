"""Information extraction: schemas, instructions, parsing, grounding, evaluation."""

from knowlm.ie.extractor import ExtractionResult, Extractor
from knowlm.ie.results import Argument, Entity, Event, Triple
from knowlm.ie.schema import Schema, SchemaItem
from knowlm.ie.tasks import get_task, parse_schema, register_task, task_names

__all__ = [
    "Argument",
    "Entity",
    "Event",
    "ExtractionResult",
    "Extractor",
    "Schema",
    "SchemaItem",
    "Triple",
    "get_task",
    "parse_schema",
    "register_task",
    "task_names",
]

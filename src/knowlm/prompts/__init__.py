"""Prompt templates (Alpaca as KnowLM uses, the model's chat template, raw)."""

from knowlm.prompts.templates import (
    AlpacaTemplate,
    ChatTemplate,
    PromptTemplate,
    RawTemplate,
    chat_prompt,
    get_template,
    register_template,
    template_names,
)

__all__ = [
    "AlpacaTemplate",
    "ChatTemplate",
    "PromptTemplate",
    "RawTemplate",
    "chat_prompt",
    "get_template",
    "register_template",
    "template_names",
]

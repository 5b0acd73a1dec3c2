import pytest

from knowlm.errors import InputError
from knowlm.prompts import AlpacaTemplate, ChatTemplate, get_template, register_template, template_names


def test_alpaca_with_and_without_input():
    alpaca = AlpacaTemplate()
    with_input = alpaca.format("Extract the entities.", "Berlin is in Germany.")
    assert with_input.startswith("Below is an instruction that describes a task, paired with an input")
    assert with_input.endswith(
        "### Instruction:\nExtract the entities.\n\n### Input:\nBerlin is in Germany.\n\n### Response:\n"
    )
    without = alpaca.format("Say hello.")
    assert "### Input:" not in without
    assert without.endswith("### Instruction:\nSay hello.\n\n### Response:\n")
    assert alpaca.format("Say hello.", "") == without


def test_alpaca_response_extraction():
    alpaca = AlpacaTemplate()
    echoed = alpaca.format("Say hello.") + " Hello there! "
    assert alpaca.response(echoed) == "Hello there!"
    assert alpaca.response("  just the answer ") == "just the answer"


def test_raw_template():
    raw = get_template("raw")
    assert raw.format("Translate:", "Hallo") == "Translate:\n\nHallo"
    assert raw.format("Only this") == "Only this"


def test_chat_template_uses_the_renderer():
    seen = []

    def render(messages):
        seen.append(messages)
        return f"<user>{messages[-1]['content']}</user><assistant>"

    chat = get_template("chat", render)
    assert isinstance(chat, ChatTemplate)
    assert chat.format("Extract", "text") == "<user>Extract\n\ntext</user><assistant>"
    assert seen == [[{"role": "user", "content": "Extract\n\ntext"}]]


def test_auto_picks_chat_when_available_else_alpaca():
    assert get_template("auto", lambda m: "x").name == "chat"
    assert get_template("auto", None).name == "alpaca"


def test_chat_without_template_is_a_clear_error():
    with pytest.raises(InputError, match="no chat template"):
        get_template("chat", None)


def test_unknown_template_lists_choices():
    with pytest.raises(InputError, match="alpaca"):
        get_template("vicuna")


def test_registry_rejects_duplicates_and_bad_names():
    with pytest.raises(ValueError, match="already registered"):
        register_template("alpaca", lambda r: AlpacaTemplate())
    with pytest.raises(ValueError, match="identifier"):
        register_template("not a name", lambda r: AlpacaTemplate())
    assert template_names()[0] == "auto"


def test_few_shot_examples_come_first_in_every_template():
    shots = [("Q1", "A1"), ("Q2", "A2")]
    alpaca = AlpacaTemplate()
    prompt = alpaca.format("Q3", shots=shots)
    assert prompt == alpaca.format("Q1") + "A1\n\n" + alpaca.format("Q2") + "A2\n\n" + alpaca.format("Q3")
    assert get_template("raw").format("Q3", shots=shots) == "Q1\nA1\n\nQ2\nA2\n\nQ3"
    seen = []
    chat = get_template("chat", lambda messages: seen.append(messages) or "rendered")
    assert chat.format("Q3", shots=shots) == "rendered"
    assert seen[0] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
        {"role": "user", "content": "Q3"},
    ]


def _jinja(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return lambda messages: env.from_string(template).render(messages=messages, add_generation_prompt=True)


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_chat_prompts_stop_at_the_templates_turn_markers():
    from knowlm.models.default import GEMMA_CHAT_TEMPLATE
    from knowlm.prompts.templates import chat_prompt

    hello = [{"role": "user", "content": "Say hello"}]
    prompt, stops = chat_prompt(_jinja(GEMMA_CHAT_TEMPLATE), hello)
    assert prompt.endswith("<start_of_turn>model\n")
    # the special markers, and the next turn's role line as plain text (a base model writes it so)
    assert stops == ["<end_of_turn>", "<start_of_turn>user", "<start_of_turn>", "user\n"]
    assert chat_prompt(_jinja(CHATML), hello)[1] == [
        "<|im_end|>",
        "<|im_start|>user",
        "<|im_start|>",
        "user\n",
    ]
    # no template: the Alpaca fallback and its own stop
    assert chat_prompt(lambda m: None, hello)[1] == ["### Instruction:"]


def test_a_template_that_refuses_the_probe_gives_no_markers():
    from knowlm.prompts.templates import turn_markers

    def strict(messages):
        if len(messages) > 1:
            raise ValueError("one message only")
        return f"<q>{messages[0]['content']}</q>"

    assert turn_markers(strict, [{"role": "user", "content": "hi"}]) == []

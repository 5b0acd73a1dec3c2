"""Item confidences from token log-probabilities: which tokens count for an item, the filter, the
calibration report."""

import json
import math

import pytest

from knowlm.engines.base import Completion
from knowlm.ie.confidence import set_confidences
from knowlm.ie.evaluate import Document, calibration, keep_confident, score
from knowlm.ie.extractor import Extractor
from knowlm.ie.results import Argument, Entity, Event, Triple, item_to_dict
from tests.ie.test_extractor import ScriptedEngine


def tokens(*pieces: tuple[str, float]) -> list[tuple[str, float]]:
    """(text, probability) pieces as (text, log-probability) tokens."""
    return [(text, math.log(p)) for text, p in pieces]


def test_an_item_counts_its_tokens_from_the_previous_item_to_its_last_string():
    answer = tokens(
        ('{"founder": [{"head": "', 1.0),
        ("Steve", 0.5),
        (' Jobs", "tail": "', 1.0),
        ("Apple", 0.8),
        ('"}, {"head": "', 0.25),  # the decision to write a second triple
        ("Woz", 0.9),
        ('", "tail": "', 1.0),
        ("Apple", 1.0),
        ('"}]}', 1.0),
    )
    output = "".join(text for text, _ in answer)
    first, second = Triple("Steve Jobs", "founder", "Apple"), Triple("Woz", "founder", "Apple")
    set_confidences(output, answer, [first, second])
    assert first.confidence == pytest.approx(0.5 * 0.8)
    assert second.confidence == pytest.approx(0.25 * 0.9)


def test_json_escaped_strings_are_found_and_unfound_items_get_none():
    text = 'say "hi"'
    output = json.dumps({"quote": [text]})
    answer = [(output[:11], 0.0), (output[11:], math.log(0.5))]
    found, missing = Entity("quote", text), Entity("quote", "never written")
    set_confidences(output, answer, [found, missing])
    assert found.confidence == pytest.approx(0.5)
    assert missing.confidence is None
    set_confidences(output, None, [Entity("quote", "x")])  # an engine without logprobs: nothing is set


def test_event_arguments_get_their_own_confidence():
    answer = tokens(
        ('{"Acquire": [{"trigger": "', 1.0),
        ("bought", 0.9),
        ('", "arguments": {"buyer": "', 1.0),
        ("Apple", 0.6),
        ('", "target": "', 0.5),
        ("Beats", 0.4),
        ('"}}]}', 1.0),
    )
    output = "".join(text for text, _ in answer)
    event = Event("Acquire", "bought", [Argument("buyer", "Apple"), Argument("target", "Beats")])
    set_confidences(output, answer, [event])
    assert event.confidence == pytest.approx(0.9 * 0.6 * 0.5 * 0.4)
    assert [a.confidence for a in event.arguments] == pytest.approx([0.6, 0.5 * 0.4])
    assert item_to_dict(event)["arguments"][0]["confidence"] == pytest.approx(0.6)


class LogprobEngine(ScriptedEngine):
    """The scripted engine, answering with every token at probability ``p`` (one token a character)."""

    def __init__(self, answer, p):
        super().__init__(answer)
        self.p = p

    def generate(self, prompts, params):
        done = super().generate(prompts, params)
        return [
            Completion(c.text, 1, len(c.text), "stop", [(ch, math.log(self.p(ch))) for ch in c.text])
            for c in done
        ]


def entities_answer(names, text):
    return json.dumps(
        {name: [w for w in ("Acme", "Zed") if w in text] if name == "org" else [] for name in names}
    )


def test_extracted_items_carry_their_confidence_and_min_confidence_filters():
    unsure_zed = LogprobEngine(entities_answer, lambda ch: 0.5 if ch == "Z" else 1.0)
    result = Extractor(unsure_zed, "ner", "org,person").extract("Acme sued Zed.")
    assert {e.text: e.confidence for e in result.entities} == pytest.approx({"Acme": 1.0, "Zed": 0.5})
    assert all(0 <= r["confidence"] <= 1 for r in result.to_dict()["results"])
    kept = Extractor(unsure_zed, "ner", "org,person", min_confidence=0.6).extract("Acme sued Zed.")
    assert [e.text for e in kept.entities] == ["Acme"]
    no_logprobs = Extractor(ScriptedEngine(entities_answer), "ner", "org", min_confidence=0.1)
    assert no_logprobs.extract("Acme sued Zed.").entities == []  # unknown confidence does not pass a bar


def test_an_item_said_twice_keeps_its_surer_confidence():
    surer = iter([0.5, 0.9])  # the first "A" written is unsure, the second sure
    engine = LogprobEngine(
        lambda names, text: json.dumps({name: ["Acme", "Acme"] for name in names}),
        lambda ch: next(surer) if ch == "A" else 1.0,
    )
    result = Extractor(engine, "ner", "org").extract("Acme.")
    assert [(e.text, e.confidence) for e in result.entities] == [("Acme", pytest.approx(0.9))]


def test_calibration_reports_ece_reliability_and_thresholds():
    judged = [(0.95, True)] * 9 + [(0.95, False)] + [(0.25, False)] * 3 + [(0.25, True)]
    report = calibration(judged, gold=12)
    # bin 0.9-1.0: confidence 0.95, accuracy 0.9; bin 0.2-0.3: confidence 0.25, accuracy 0.25
    assert report["ece"] == pytest.approx(10 / 14 * 0.05, abs=1e-4)
    assert [(b["items"], b["accuracy"]) for b in report["reliability"]] == [(4, 0.25), (10, 0.9)]
    at = {t["min_confidence"]: t for t in report["thresholds"]}
    assert (at[0.0]["tp"], at[0.0]["predicted"]) == (10, 14)
    assert (at[0.5]["tp"], at[0.5]["predicted"], at[0.5]["recall"]) == (9, 10, 0.75)


def test_score_reports_calibration_and_keep_confident_filters():
    gold = [Entity("org", "Acme"), Entity("org", "Zed")]
    pred = [Entity("org", "Acme", confidence=0.9), Entity("org", "Bogus", confidence=0.2)]
    report = score("ner", [Document("d", gold, pred)])
    assert report["calibration"]["items"] == 2 and report["precision"] == 0.5
    strict = score("ner", keep_confident([Document("d", gold, list(pred))], 0.5))
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)
    assert "calibration" not in score("ner", [Document("d", gold, [Entity("org", "Acme")])])

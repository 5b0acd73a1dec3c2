import json

import pytest

from knowlm.errors import InputError
from knowlm.ie.evaluate import Document, documents_from_lines, read_eval_file, read_gold, score
from knowlm.ie.results import Argument, Entity, Event, Triple


def test_ner_micro_scores_by_hand():
    docs = [
        Document(
            "1",
            gold=[Entity("人物", "张三"), Entity("地点", "杭州")],
            pred=[Entity("人物", "张三"), Entity("地点", "北京"), Entity("人物", "张三")],
        ),
        Document("2", gold=[Entity("人物", "李四")], pred=[]),
    ]
    report = score("ner", docs)
    # tp 1; predicted 2 (duplicates count once); gold 3
    assert (report["tp"], report["predicted"], report["gold"]) == (1, 2, 3)
    assert report["precision"] == 0.5 and report["recall"] == pytest.approx(0.3333, abs=1e-4)
    assert report["f1"] == 0.4
    assert report["by_type"]["人物"]["recall"] == 0.5 and report["by_type"]["地点"]["f1"] == 0.0


def test_type_must_match_for_entities():
    report = score("ner", [Document("1", gold=[Entity("人物", "张三")], pred=[Entity("地点", "张三")])])
    assert report["tp"] == 0


def test_re_scores_triples():
    gold = [Triple("马云", "创始人", "阿里巴巴"), Triple("阿里巴巴", "总部", "杭州")]
    pred = [Triple("马云", "创始人", "阿里巴巴"), Triple("杭州", "总部", "阿里巴巴")]
    report = score("re", [Document("1", gold, pred)])
    assert (report["precision"], report["recall"], report["f1"]) == (0.5, 0.5, 0.5)
    assert set(report["by_type"]) == {"创始人", "总部"}


def test_ee_scores_triggers_and_arguments():
    gold = [Event("裁员", "裁员", [Argument("时间", "5月份"), Argument("裁员人数", "900余人")])]
    pred = [Event("裁员", "裁员", [Argument("时间", "5月份"), Argument("裁员方", "甲骨文")])]
    report = score("ee", [Document("1", gold, pred)])
    assert report["metric"] == "argument"
    assert report["metrics"]["trigger"]["f1"] == 1.0
    assert report["metrics"]["argument"]["f1"] == 0.5 and report["f1"] == 0.5


def test_read_gold_sample_forms():
    assert read_gold("ner", '[{"entity": "张三", "entity_type": "人物"}]') == [Entity("人物", "张三")]
    assert read_gold("re", [{"head": "a", "relation": "r", "tail": "b"}])[0].key() == ("a", "r", "b")
    event = read_gold(
        "ee",
        [
            {
                "event_trigger": "裁员",
                "event_type": "裁员",
                "arguments": [{"argument": "5月份", "role": "时间"}],
            }
        ],
    )[0]
    assert event.key() == ("裁员", "裁员") and event.argument_keys() == [("裁员", "时间", "5月份")]
    assert read_gold("ner", {"人物": ["张三"], "地点": []}) == [Entity("人物", "张三")]


def _line(id_, schema, label, output, task="RE"):
    instruction = {"instruction": "抽取关系", "schema": schema, "input": "马云在杭州创立了阿里巴巴。"}
    return {
        "id": id_,
        "task": task,
        "instruction": json.dumps(instruction, ensure_ascii=False),
        "label": json.dumps(label, ensure_ascii=False),
        "output": output,
    }


def test_oneke_eval_file_merges_schema_batches(tmp_path):
    label = [
        {"head": "马云", "relation": "创始人", "tail": "阿里巴巴"},
        {"head": "阿里巴巴", "relation": "总部", "tail": "杭州"},
    ]
    rows = [
        _line(
            "d1", ["创始人", "作者"], label, '{"创始人": [{"head": "马云", "tail": "阿里巴巴"}], "作者": []}'
        ),
        _line(
            "d1", ["总部", "国籍"], label, '{"总部": [{"head": "阿里巴巴", "tail": "北京"}], "国籍": []'
        ),  # cut off
        _line("d2", ["作者"], [], "I don't know."),
    ]
    path = tmp_path / "dev.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    lines = read_eval_file(path)
    docs = documents_from_lines(lines)
    assert [d.id for d in docs] == ["d1", "d2"]
    report = score("re", docs)
    assert (report["tp"], report["predicted"], report["gold"]) == (1, 2, 2)
    assert report["documents"] == 2 and report["outputs"] == 3
    assert report["parse_failures"] == 2 and report["parse_failure_rate"] == pytest.approx(0.6667, abs=1e-4)


def test_eval_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"task": "NER", "instruction": "{\\"schema\\": [\\"人物\\"], \\"input\\": \\"x\\"}"}\n')
    with pytest.raises(InputError, match="line 1: missing 'label'"):
        read_eval_file(path)
    path.write_text(
        '{"task": "NER", "instruction": "{\\"schema\\": [\\"人物\\"], \\"input\\": \\"马云\\"}", '
        '"output": "{\\"人物\\": [\\"马云\\"]}"}\n'
    )
    (line,) = read_eval_file(path)  # a training record: its output is the gold
    assert line.output is None and read_gold("ner", line.label)[0].text == "马云"
    path.write_text('{"task": "NER", "label": "[]", "instruction": "not json"}\n')
    with pytest.raises(InputError, match="line 1: 'instruction' is not a JSON string"):
        read_eval_file(path)


def test_real_instructkgc_samples_score_perfectly_against_themselves(shared_data):
    from knowlm.ie.evaluate import EvalLine
    from knowlm.ie.formats import parse_oneke_instruction
    from knowlm.ie.tasks import parse_schema

    rows = [
        json.loads(line) for line in (shared_data / "instructkgc/re/train.json").read_text().splitlines()[:20]
    ]
    lines = []
    for n, r in enumerate(rows):  # the gold answer doubles as the prediction
        body = parse_oneke_instruction(r["instruction"], f"line {n}")
        schema = parse_schema("re", body["schema"])
        lines.append(EvalLine(n, str(n), "re", schema, r["instruction"], r["output"], r["output"]))
    report = score("re", documents_from_lines(lines))
    assert report["gold"] > 0 and report["f1"] == 1.0 and report["parse_failures"] == 0


def test_confusion_counts_mentions_found_under_another_type():
    gold = [Entity("公司", "阿里巴巴"), Entity("人物", "马云"), Entity("地址", "杭州")]
    pred = [
        Entity("组织机构", "阿里巴巴"),
        Entity("人物", "马云"),
        Entity("景点", "杭州"),
        Entity("公司", "杭州"),
    ]
    report = score("ner", [Document("d", gold, pred)])
    assert report["confusion"] == {"公司": {"组织机构": 1}, "地址": {"公司": 1, "景点": 1}}
    triples = score(
        "re",
        [
            Document(
                "d",
                [Triple("A", "founder", "B")],
                [Triple("A", "work for", "B"), Triple("B", "founder", "A")],
            )
        ],
    )
    assert triples["confusion"] == {"founder": {"work for": 1}}  # a reversed pair is not a type confusion


def test_bootstrap_interval_brackets_f1_and_narrows_with_more_documents():
    def docs(n: int) -> list[Document]:
        out = []
        for i in range(n):  # every other document right
            gold = [Entity("person", f"p{i}")]
            out.append(Document(str(i), gold, gold if i % 2 else [Entity("person", "x")]))
        return out

    small, large = score("ner", docs(20)), score("ner", docs(400))
    for report in (small, large):
        low, high = report["f1_ci95"]
        assert low < report["f1"] < high
    assert large["f1_ci95"][1] - large["f1_ci95"][0] < small["f1_ci95"][1] - small["f1_ci95"][0]
    assert score("ner", docs(20))["f1_ci95"] == small["f1_ci95"]  # seeded: the same interval again

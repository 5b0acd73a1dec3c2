import csv
import io
from xml.etree import ElementTree as ET

import pytest

from knowlm.errors import InputError
from knowlm.ie.export import export
from knowlm.kg.iri import RDFS, entity_iri, relation_iri

TRIPLES = [
    {
        "id": 1,
        "results": [
            {
                "head": "马云",
                "relation": "创始人",
                "tail": "阿里巴巴",
                "head_spans": [[0, 2]],
                "tail_spans": [[8, 12]],
                "grounded": True,
            },
            {
                "head": "阿里巴巴",
                "relation": "总部",
                "tail": "杭州",
                "head_spans": [],
                "tail_spans": [],
                "grounded": False,
            },
            {
                "head": "马云",
                "relation": "创始人",
                "tail": "阿里巴巴",
                "head_spans": [],
                "tail_spans": [],
                "grounded": True,
            },
        ],
    }
]


def test_csv_rows():
    rows = list(csv.DictReader(io.StringIO(export(TRIPLES, "csv"))))
    assert rows[0]["head"] == "马云" and rows[0]["type"] == "创始人" and rows[0]["text"] == "阿里巴巴"
    assert rows[0]["start"] == "8" and rows[0]["head_start"] == "0" and rows[1]["grounded"] == "False"


def test_ntriples_are_deduplicated_and_escaped():
    lines = export(TRIPLES, "nt").splitlines()
    edges = [line for line in lines if RDFS + "label" not in line]
    assert edges == [
        f"<{entity_iri('马云', None)}> <{relation_iri('创始人')}> <{entity_iri('阿里巴巴', None)}> .",
        f"<{entity_iri('阿里巴巴', None)}> <{relation_iri('总部')}> <{entity_iri('杭州', None)}> .",
    ]
    assert f'<{entity_iri("马云", None)}> <{RDFS}label> "马云" .' in lines and len(lines) == 7
    quoted = [{"id": 1, "results": [{"head": 'say "hi"\\', "relation": "r", "tail": "x\ny"}]}]
    assert '"say \\"hi\\"\\\\"' in export(quoted, "nt") and '"x y"' in export(quoted, "nt")


def test_graphml_nodes_and_edges():
    root = ET.fromstring(export(TRIPLES, "graphml"))
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(root.findall(".//g:node", ns)) == 3 and len(root.findall(".//g:edge", ns)) == 2


def test_graph_formats_need_triples():
    with pytest.raises(InputError, match="need triples"):
        export([{"id": 1, "results": [{"type": "人物", "text": "马云", "spans": []}]}], "nt")


def test_entities_and_events_in_csv():
    records = [
        {
            "id": 7,
            "results": [
                {"type": "人物", "text": "马云", "spans": [[0, 2]], "grounded": True},
                {
                    "type": "裁员",
                    "trigger": "裁员",
                    "arguments": [{"role": "时间", "text": "5月", "spans": []}],
                    "trigger_spans": [],
                },
            ],
        }
    ]
    rows = list(csv.DictReader(io.StringIO(export(records, "csv"))))
    assert [r["kind"] for r in rows] == ["entity", "event"] and rows[1]["arguments"] == "时间=5月"

import csv
import io
from xml.etree import ElementTree as ET

import pytest

from knowlm.errors import InputError
from knowlm.ie.export import export

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
    assert len(lines) == 2
    assert lines[0].startswith("<urn:knowlm:entity:%E9%A9%AC%E4%BA%91> <urn:knowlm:relation:")


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

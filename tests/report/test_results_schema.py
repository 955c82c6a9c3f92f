"""results.json: real runs validate against the documented schema, broken documents do not, and the page
that documents the schema names every field in it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.report import load_run, schema_errors
from harness.report.schema import results_schema

ROOT = Path(__file__).resolve().parents[2]


def _doc(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder / "results.json").read_text())
    return doc


def test_real_runs_validate(reference_run: Path, locust_run: Path, broken_run: Path) -> None:
    for folder in (reference_run, locust_run, broken_run):
        assert schema_errors(_doc(folder)) == [], folder
    assert {c["verdict"] for c in _doc(locust_run)["cases"]} >= {"OK", "FAILED"}
    assert _doc(broken_run)["cases"][0]["verdict"] == "UNKNOWN"


def test_seeds_and_timeline_are_recorded(reference_run: Path) -> None:
    cases = {c["id"]: c for c in _doc(reference_run)["cases"]}
    delayed = cases["heartbeat/04-delayed-replies"]
    assert [(s["source"], s["seed"]) for s in delayed["seeds"]] == [("fault-plan", 4)]
    assert [(s["source"], s["seed"]) for s in cases["storms/01-unknown-type-flood"]["seeds"]] == [("storm#1", 7)]
    timeline = delayed["timeline"]
    assert timeline["interval"] == 0.2 and timeline["missing_after_min"] == pytest.approx(0.8)
    assert len(timeline["heartbeats"]) >= 4 and timeline["acked_at"] is not None
    assert max(n for _, n in timeline["gaps"]) == pytest.approx(delayed["max_heartbeat_gap_s"], abs=1e-3)
    assert [w[2] for w in timeline["fault_windows"]] == ["fault-plan"]
    assert delayed["dir"] == "cases/heartbeat__04-delayed-replies"
    assert (reference_run / delayed["dir"] / "trace.jsonl").is_file()


def _break(doc: dict[str, Any], how: str) -> dict[str, Any]:
    bad = copy.deepcopy(doc)
    case = bad["cases"][0]
    if how == "no-verdict":
        del case["verdict"]
    elif how == "unknown-verdict":
        case["verdict"] = "PASS"
    elif how == "old-version":
        bad["schema_version"] = 1
    elif how == "extra-field":
        case["colour"] = "green"
    elif how == "finding-without-observed":
        case["findings"].append({"oracle": "x", "verdict": "OK", "expected": "y"})
    elif how == "dir-escapes":
        case["dir"] = "../../etc"
    elif how == "bad-window":
        case["timeline"]["fault_windows"].append([1.0, "later", "storm#1"])
    elif how == "negative-count":
        bad["summary"]["OK"] = -1
    elif how == "dir-dotdot":
        case["dir"] = "cases/.."
    elif how == "partial-timeline":
        case["timeline"] = {"tolerance": 1.0}
    elif how == "bogus-summary-key":
        bad["summary"]["BOGUS"] = 0
    elif how == "duplicate-id":
        bad["cases"].append(copy.deepcopy(case))
        bad["summary"][case["verdict"]] += 1
    elif how == "summary-disagrees":
        bad["summary"]["OK"] += 1
    elif how == "verdict-not-worst":
        case["findings"].append({"oracle": "heartbeat.missing", "verdict": "FAILED", "expected": "a", "observed": "b"})
    return bad


SEMANTIC = ["duplicate-id", "summary-disagrees", "verdict-not-worst"]  # valid JSON Schema, still refused


@pytest.mark.parametrize(
    "how",
    [
        *SEMANTIC,
        "dir-dotdot",
        "partial-timeline",
        "bogus-summary-key",
        "no-verdict",
        "unknown-verdict",
        "old-version",
        "extra-field",
        "finding-without-observed",
        "dir-escapes",
        "bad-window",
        "negative-count",
    ],
)
def test_broken_documents_are_rejected_with_the_path(reference_run: Path, how: str, tmp_path: Path) -> None:
    doc = _doc(reference_run)
    # heartbeat/04 first, so case 0 has a timeline with a window
    doc["cases"].sort(key=lambda c: c["id"] != "heartbeat/04-delayed-replies")
    errors = schema_errors(_break(doc, how))
    assert bool(errors) is (how not in SEMANTIC), errors
    assert all(e.startswith("$") for e in errors)
    (tmp_path / "results.json").write_text(json.dumps(_break(doc, how)))
    with pytest.raises(ScenarioError, match="results"):
        load_run(tmp_path)


def test_not_a_report_folder(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ScenarioError, match="expected a JSON document"):
        load_run(tmp_path)


def _schema_fields(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            out.add(key)
            _schema_fields(value, out)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _schema_fields(value, out)
    elif isinstance(node, list):
        for value in node:
            _schema_fields(value, out)
    return out


def test_the_schema_page_documents_every_field() -> None:
    page = (ROOT / "docs" / "results-schema.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", page, flags=re.M))
    fields = {
        f for f in _schema_fields(results_schema(), set()) if not f.isupper() and f != "NON-STRICT"
    }  # verdicts: in `summary`
    assert fields - documented == set(), "fields in results.schema.json missing from docs/results-schema.md"
    assert documented - fields == set(), "docs/results-schema.md documents fields the schema does not have"
    assert f"schema version {results_schema()['properties']['schema_version']['const']}" in page

"""`compare`: several runs merged into one matrix that stands alone; bad input is a usage error that says why."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.report import compare_runs

CLI = [sys.executable, "-m", "harness.cli"]


def test_compare_merges_runs_into_one_matrix(reference_run: Path, locust_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    done = subprocess.run(
        [*CLI, "compare", str(reference_run), str(locust_run), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    matrix = json.loads((out / "compare.json").read_text())
    assert [i["label"] for i in matrix["implementations"]] == ["reference", "locust"]
    assert matrix["cases"]["malformed/01-garbage"] == {"reference": "OK", "locust": "FAILED"}
    index = (out / "index.html").read_text()
    assert re.findall(r'<th class="col">([^<]+)</th>', index) == ["reference", "locust"]
    assert len(re.findall(r'<tr class="case"', index)) == len(matrix["cases"])
    page = out / "runs" / "locust" / "cases" / "malformed__01-garbage"
    assert (page / "index.html").is_file() and (page / "trace.jsonl").is_file() and (page / "worker.log").is_file()
    assert 'href="runs/locust/cases/malformed__01-garbage/index.html"' in index
    assert "../../../reference/cases/malformed__01-garbage/index.html" in (page / "index.html").read_text()
    suites = (out / "junit.xml").read_text()
    assert "locust-conformance[reference]" in suites and "locust-conformance[locust]" in suites


def test_the_same_label_twice_gets_two_columns(reference_run: Path, tmp_path: Path) -> None:
    compare_runs([reference_run, reference_run], tmp_path / "cmp")
    labels = [i["label"] for i in json.loads((tmp_path / "cmp" / "compare.json").read_text())["implementations"]]
    assert labels == ["reference", "reference-2"]
    assert (tmp_path / "cmp" / "runs" / "reference-2" / "results.json").is_file()


def test_bad_inputs_are_usage_errors_and_leave_nothing(reference_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [*CLI, "compare", str(reference_run), str(tmp_path / "empty"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "there is none" in done.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ScenarioError, match="already holds files"):
        compare_runs([reference_run], tmp_path / "full")
    done = subprocess.run([*CLI, "report", str(tmp_path / "empty")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "results.json" in done.stderr

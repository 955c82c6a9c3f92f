"""Reports of finished runs: ``results.json`` (documented schema), ``junit.xml``, a static HTML report, comparisons.

Everything here reads what a run wrote to disk (``results.json`` and the case folders), so a report can be
rebuilt, or several runs merged into one matrix, long after the runs ended.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.report.html import write_site
from harness.report.junit import write_junit
from harness.report.model import LoadedRun, load_run, unique_labels
from harness.report.schema import schema_errors, schema_version

__all__ = ["ReportFiles", "compare_runs", "load_run", "schema_errors", "schema_version", "write_run_report"]


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    index: Path
    junit: Path


def write_run_report(folder: Path) -> ReportFiles:
    """``junit.xml`` and the HTML report of the run in ``folder``, written next to its ``results.json``."""
    run = load_run(folder)
    junit = write_junit([run], run.folder / "junit.xml")
    index = write_site([run], run.folder, in_place=True, title=f"locust-conformance: {run.label}")
    return ReportFiles(run.folder, index, junit)


def compare_runs(folders: list[Path], out: Path) -> ReportFiles:
    """One report under ``out`` with a column per run in ``folders`` (each a report folder holding results.json)."""
    if not folders:
        raise ScenarioError("compare needs at least one report folder")
    runs: list[LoadedRun] = unique_labels([load_run(f) for f in folders])
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"{out}: expected a new or empty folder for the comparison; it is a file")
    if out.exists() and any(out.iterdir()):
        raise ScenarioError(f"{out}: expected a new or empty folder for the comparison; it already holds files")
    out.mkdir(parents=True, exist_ok=True)
    junit = write_junit(runs, out / "junit.xml")
    labels = " vs ".join(r.label for r in runs)
    index = write_site(runs, out, in_place=False, title=f"locust-conformance: {labels}")
    matrix = {
        "schema_version": 1,
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "implementations": [{**r.meta, "label": r.label, "source": str(r.folder)} for r in runs],
        "cases": {
            case_id: {r.label: _cell(r, case_id) for r in runs}
            for case_id in dict.fromkeys(
                [*(c["id"] for r in runs for c in r.cases), *(n["id"] for r in runs for n in _not_run(r))]
            )
        },
    }
    (out / "compare.json").write_text(json.dumps(matrix, indent=2) + "\n", "utf-8")
    return ReportFiles(out, index, junit)


def _not_run(run: LoadedRun) -> list[dict[str, Any]]:
    left: list[dict[str, Any]] = run.doc.get("not_run", [])
    return left


def _cell(run: LoadedRun, case_id: str) -> str | None:
    """A case's verdict in ``run``, ``NOT-RUN`` if the run left it out, None if the run never knew it."""
    case = run.case(case_id)
    if case is not None:
        return str(case["verdict"])
    return "NOT-RUN" if any(n["id"] == case_id for n in _not_run(run)) else None

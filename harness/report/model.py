"""A finished run as read back from its report folder: the input of every report writer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.report.schema import schema_errors, schema_version
from harness.verdicts import Verdict, worst

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class LoadedRun:
    """One implementation's run: its ``results.json`` document and the folder holding its case folders."""

    folder: Path
    doc: dict[str, Any]
    label: str

    @property
    def cases(self) -> list[dict[str, Any]]:
        cases: list[dict[str, Any]] = self.doc["cases"]
        return cases

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.doc["run"]
        return meta

    def case(self, case_id: str) -> dict[str, Any] | None:
        return next((c for c in self.cases if c["id"] == case_id), None)

    def case_folder(self, case: dict[str, Any]) -> Path:
        return self.folder / str(case["dir"])


def load_run(folder: Path, label: str | None = None) -> LoadedRun:
    """Read and validate ``folder/results.json``; a missing, unreadable or invalid file is the caller's error."""
    path = folder / RESULTS_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise ScenarioError(f"{folder}: expected a report folder holding {RESULTS_FILE}; there is none")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: expected a JSON document; could not read it: {exc}") from exc
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != schema_version():
        raise ScenarioError(
            f"{path}: expected results schema version {schema_version()} (docs/results-schema.md); found {version!r}"
        )
    errors = schema_errors(doc) or consistency_errors(doc)
    if errors:
        shown = "\n  ".join(errors[:10]) + (f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise ScenarioError(f"{path}: does not match the results schema (docs/results-schema.md):\n  {shown}")
    return LoadedRun(path.parent, doc, label or str(doc["run"]["label"]))


def consistency_errors(doc: dict[str, Any]) -> list[str]:
    """What a schema cannot say: ids and folders unique, the summary and each case's verdict agree with the findings."""
    errors = []
    cases = doc["cases"]
    for key in ("id", "dir"):
        seen: set[str] = set()
        for i, case in enumerate(cases):
            if case[key] in seen:
                errors.append(f"$.cases[{i}].{key}: expected each case once; {case[key]!r} appears again")
            seen.add(case[key])
    counts = {v.value: sum(1 for c in cases if c["verdict"] == v.value) for v in Verdict}
    if doc["summary"] != counts:
        errors.append(f"$.summary: expected the verdict counts of the cases {counts}; found {doc['summary']}")
    for i, case in enumerate(cases):
        merged = worst(Verdict(f["verdict"]) for f in case["findings"]).value
        if case["verdict"] != merged:
            errors.append(f"$.cases[{i}].verdict: expected {merged} (the worst of its findings); found {case['verdict']}")
    return errors


def unique_labels(runs: list[LoadedRun]) -> list[LoadedRun]:
    """The same runs, relabelled ``label-2``, ``label-3`` ... where two would share a label or a folder name."""
    taken: set[str] = set()
    out = []
    for run in runs:
        label, n = run.label, 1
        while folder_name(label) in taken:
            n += 1
            label = f"{run.label}-{n}"
        taken.add(folder_name(label))
        out.append(run if label == run.label else LoadedRun(run.folder, run.doc, label))
    return out


def folder_name(label: str) -> str:
    """A folder name for ``label``: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "run"

"""The static HTML report: a matrix of cases x implementations, and a page per case with its evidence.

Everything is in the files: styles and the small filter script are inline, pictures are inline SVG, so the
report opens from disk in any browser with no server and no network.
"""

from __future__ import annotations

import datetime
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from harness.consequences import ROBUSTNESS
from harness.report.model import LoadedRun, folder_name
from harness.report.timeline import TimelineUnavailable, render_timeline
from harness.report.wirelog import read_wire_log
from harness.verdicts import MEANINGS, Verdict, rank

VERDICT_MEANINGS = {v.value: MEANINGS[v] for v in sorted(Verdict, key=rank, reverse=True)}  # the legend, worst first
ARTIFACT_FILES = ("trace.txt", "trace.jsonl", "worker.log", "stack.txt", "result.json")
INDEX = "index.html"
STACK_CHARS = 200_000  # of stack.txt shown on the case page (the file is linked whole)


@dataclass(frozen=True)
class Column:
    """One implementation in the matrix: its run, and where its pages live relative to the report root."""

    run: LoadedRun
    base: str  # "" for a run reported in place, "runs/<slug>/" in a comparison

    def page(self, case: dict[str, Any]) -> str:
        return f"{self.base}{case['dir']}/{INDEX}"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["meanings"] = VERDICT_MEANINGS
    env.filters["secs"] = lambda v, digits=3: "n/a" if v is None else f"{float(v):.{digits}f} s"
    return env


def case_rows(columns: list[Column]) -> list[dict[str, Any]]:
    """The matrix rows: every case any run has, in first-seen order, with each column's cell."""
    order: dict[str, dict[str, Any]] = {}
    for column in columns:
        for case in column.run.cases:
            order.setdefault(case["id"], case)
    for column in columns:
        for left in column.run.doc.get("not_run", []):
            order.setdefault(left["id"], left)
    rows = []
    for case_id, case in order.items():
        cells: list[dict[str, Any] | None] = []
        for column in columns:
            mine = column.run.case(case_id)
            if mine is None:
                left = next((n for n in column.run.doc.get("not_run", []) if n["id"] == case_id), None)
                cells.append(None if left is None else {"verdict": "NOT-RUN", "tip": f"not run: {left['reason']}"})
                continue
            bad = [f for f in mine["findings"] if f["verdict"] == mine["verdict"] and f["verdict"] != "OK"]
            tip = f"{mine['verdict']} [{bad[0]['oracle']}]: {bad[0]['observed']}"[:300] if bad else mine["verdict"]
            if mine.get("kind") == "robustness" and mine["verdict"] == "FAILED":
                tip = "fails under input the stock master never sends - " + tip
            cells.append({"verdict": mine["verdict"], "href": column.page(mine), "tip": tip, "gap": mine["max_heartbeat_gap_s"]})
        verdicts = sorted({c["verdict"] for c in cells if c and c["verdict"] != "NOT-RUN"}, key=lambda v: rank(Verdict(v)))
        rows.append(
            {
                "id": case_id,
                "title": case["title"],
                "category": case["category"],
                "kind": case.get("kind", "robustness" if case["category"] in ROBUSTNESS else "conformance"),
                "cells": cells,
                "verdicts": verdicts,
                "differ": len({c["verdict"] if c else None for c in cells}) > 1,
            }
        )
    return rows


def write_index(columns: list[Column], out: Path, title: str) -> Path:
    """Write ``out/index.html``: the matrix with filters, the runs' metadata and the verdict legend."""
    rows = case_rows(columns)
    counts = [{v: sum(1 for c in col.run.cases if c["verdict"] == v) for v in VERDICT_MEANINGS} for col in columns]
    page = (
        _environment()
        .get_template("index.html.j2")
        .render(
            title=title,
            columns=columns,
            counts=counts,
            rows=rows,
            categories=list(dict.fromkeys(r["category"] for r in rows)),
            generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
    )
    path = out / INDEX
    path.write_text(page, "utf-8")
    return path


def write_case_page(columns: list[Column], column: Column, case: dict[str, Any], out: Path, source: Path) -> Path:
    """Write the page of ``case`` in ``column`` under ``out``, reading its trace from ``source`` (its case folder)."""
    folder = out / column.base / str(case["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    picture, why_no_picture = "", ""
    if case["timeline"]:
        try:
            picture = render_timeline(case["timeline"], f"{case['id']} on {column.run.label}")
        except TimelineUnavailable as exc:
            why_no_picture = str(exc)
        except Exception as exc:  # a bug of ours or odd data: the page still shows everything else
            why_no_picture = f"a harness failure drawing it ({exc!r}); the data is in results.json"
    else:
        why_no_picture = "no heartbeats were due: the worker was never acknowledged"
    here = folder
    others = [
        {"label": c.run.label, "verdict": other["verdict"], "href": os.path.relpath(out / c.page(other), here)}
        for c in columns
        if c is not column and (other := c.run.case(case["id"])) is not None
    ]
    page = (
        _environment()
        .get_template("case.html.j2")
        .render(
            case=case,
            label=column.run.label,
            findings=sorted(case["findings"], key=lambda f: -rank(Verdict(f["verdict"]))),
            picture=Markup(picture),
            why_no_picture=why_no_picture,
            wire=read_wire_log(source / "trace.jsonl"),
            files=[name for name in ARTIFACT_FILES if (source / name).is_file()],
            stack=_stack_text(source / "stack.txt"),
            others=others,
            matrix=os.path.relpath(out / INDEX, here),
        )
    )
    path = folder / INDEX
    path.write_text(page, "utf-8")
    return path


def _stack_text(path: Path) -> str:
    """The stack dump to show on the case page (bounded; the file is linked whole)."""
    if not path.is_file():
        return ""
    text = path.read_text("utf-8", "replace")
    return (
        text
        if len(text) <= STACK_CHARS
        else text[:STACK_CHARS] + f"\n... ({len(text) - STACK_CHARS} more characters in stack.txt)"
    )


def write_site(runs: list[LoadedRun], out: Path, *, in_place: bool, title: str = "locust-conformance report") -> Path:
    """The whole HTML report under ``out``; returns the matrix page.

    ``in_place``: ``out`` is the one run's own report folder (pages go next to its case folders). Otherwise
    each run gets ``out/runs/<label>/`` with a copy of its results and case files, so ``out`` stands alone.
    """
    if in_place and (len(runs) != 1 or runs[0].folder.resolve() != out.resolve()):
        raise ValueError("in-place reports are for one run written into its own folder")
    out.mkdir(parents=True, exist_ok=True)
    columns = [Column(run, "" if in_place else f"runs/{folder_name(run.label)}/") for run in runs]
    for column in columns:
        if not in_place:
            target = out / column.base
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(column.run.folder / "results.json", target / "results.json")
        for case in column.run.cases:
            source = column.run.case_folder(case)
            if not in_place:
                _copy_artifacts(source, out / column.base / case["dir"])
            write_case_page(columns, column, case, out, source)
    return write_index(columns, out, title)


def _copy_artifacts(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)

"""The wire log of a case page: ``trace.jsonl`` read back into rows, long runs of alike records folded.

Nothing is dropped: a record is shown, or counted in the folded row that stands for its run, or (past
``MAX_ROWS``) left to the linked trace.jsonl with the page saying so; a line that cannot be read is counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARROWS = {
    "recv": "W→M",
    "send": "M→W",
    "send-failed": "M✗W",
    "fault": "fault",
    "liveness": "rule",
    "note": "note",
    "output": "W out",  # a line the worker printed, at the time the harness read it
}
KEEP_OF_A_RUN = 3  # records of a run of alike records shown before the rest is folded into one row
MAX_ROWS = 4000  # rows per page; the full trace is always linked
SUMMARY_CHARS = 140
PAYLOAD_CHARS = 20_000


@dataclass
class WireRow:
    """One line of the wire log, or (``folded`` > 0) a stand-in for a run of alike records."""

    seq: int
    t: float
    kind: str
    arrow: str
    type: str
    size: int
    summary: str
    identity: str = ""
    payload: str = ""
    violations: list[str] = field(default_factory=list)
    folded: int = 0
    folded_until: float = 0.0


@dataclass
class WireLog:
    rows: list[WireRow]
    records: int
    truncated: bool  # more rows than MAX_ROWS: the page stops early, trace.jsonl has everything
    unreadable_lines: int  # lines of trace.jsonl that were not JSON objects of the trace's shape
    missing: bool = False  # there was no trace.jsonl at all


def read_wire_log(path: Path) -> WireLog:
    """Rows for ``path`` (a ``trace.jsonl``); a missing file gives no rows, a damaged line is counted, not fatal."""
    if not path.is_file():
        return WireLog([], 0, False, 0, missing=True)
    records: list[dict[str, Any]] = []
    bad = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif line.strip():
                bad += 1
    rows: list[WireRow] = []
    run_key: tuple[str, ...] | None = None
    run_length = 0
    for record in records:
        try:
            row = _row(record)
        except (TypeError, ValueError, AttributeError):  # a JSON object, but not of the trace's shape
            bad += 1
            continue
        key = (row.kind, row.type, row.identity, _state(record.get("data")), str(record.get("note", "")))
        plain = not row.violations and row.kind in ("recv", "send", "send-failed")
        run_length = run_length + 1 if plain and key == run_key else (1 if plain else 0)
        run_key = key if plain else None
        if run_length > KEEP_OF_A_RUN:
            if rows and rows[-1].folded and run_length > KEEP_OF_A_RUN + 1:
                rows[-1].folded += 1
                rows[-1].folded_until = row.t
            else:
                row.folded, row.folded_until, row.payload = 1, row.t, ""
                rows.append(row)
            continue
        if len(rows) >= MAX_ROWS:
            return WireLog(rows, len(records), True, bad)
        rows.append(row)
    return WireLog(rows, len(records), False, bad)


def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


def _state(data: Any) -> str:
    """What a fold must not hide: a heartbeat's state (ready -> running -> stopped) starts a new run."""
    return str(data.get("state", "")) if isinstance(data, dict) else ""


def _row(record: dict[str, Any]) -> WireRow:
    kind = str(record.get("kind", "?"))
    note = str(record.get("note", "") or "")
    frames = record.get("frames_hex")
    violations = record.get("violations")
    if "type" in record and kind != "fault":
        data = record.get("data")
        payload = json.dumps(data, indent=2, ensure_ascii=False, default=repr)
        summary = json.dumps(data, ensure_ascii=False, default=repr)
    elif isinstance(frames, list) and frames:
        payload = "\n".join(f"frame {i}: {f}" for i, f in enumerate(frames))
        summary = f"<undecodable, {record.get('size', 0)} bytes> {str(frames[-1])[:48]}"
    else:
        payload, summary = "", ""
    if kind == "fault" and "type" in record:
        summary = f"{record['type']}: {note}"
    elif kind in ("fault", "note", "liveness", "output") or not summary:
        summary = note
    elif note:  # a message's own note: why a send failed, a deferral or release by a fault, the garbage sent...
        summary = f"{summary}  — {note}"
        payload = f"{payload}\n\nnote: {note}" if payload else note
    if not payload and len(summary) > SUMMARY_CHARS:
        payload = summary
    if len(payload) > PAYLOAD_CHARS:
        payload = payload[:PAYLOAD_CHARS] + f"\n... ({len(payload) - PAYLOAD_CHARS} more characters in trace.jsonl)"
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return WireRow(
        int(_number(record.get("seq"), -1)),
        _number(record.get("t")),
        kind,
        ARROWS.get(kind, kind),
        str(record.get("type", "") if kind != "fault" else ""),
        int(_number(record.get("size"))),
        summary,
        str(record.get("identity", "") or ""),
        payload if payload != summary else "",
        [_violation(v) for v in violations]
        if isinstance(violations, list)
        else ([] if violations is None else [str(violations)]),
    )


def _violation(v: Any) -> str:
    if not isinstance(v, dict) or "rule" not in v:
        return json.dumps(v, default=repr)
    return f"{v.get('severity', '?')} [{v['rule']}]: expected {v.get('expected', '?')}; observed {v.get('observed', '?')}"

"""The wire log of a case page: ``trace.jsonl`` read back into rows, long runs of alike records folded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARROWS = {"recv": "W→M", "send": "M→W", "send-failed": "M✗W", "fault": "fault", "liveness": "rule", "note": "note"}
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
    payload: str = ""
    violations: list[str] = field(default_factory=list)
    folded: int = 0
    folded_until: float = 0.0


@dataclass
class WireLog:
    rows: list[WireRow]
    records: int
    truncated: bool  # more rows than MAX_ROWS: the page stops early, trace.jsonl has everything
    unreadable_lines: int  # lines of trace.jsonl that were not JSON objects


def read_wire_log(path: Path) -> WireLog:
    """Rows for ``path`` (a ``trace.jsonl``); a missing file gives no rows, a damaged line is counted, not fatal."""
    records: list[dict[str, Any]] = []
    bad = 0
    if path.is_file():
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad += 1
    rows: list[WireRow] = []
    run_key: tuple[str, str, str] | None = None
    run_length = 0
    for record in records:
        key = (str(record.get("kind", "")), str(record.get("type", "")), str(record.get("identity", "")))
        plain = not record.get("violations") and record.get("kind") in ("recv", "send", "send-failed")
        run_length = run_length + 1 if plain and key == run_key else (1 if plain else 0)
        run_key = key if plain else None
        if run_length > KEEP_OF_A_RUN and rows and rows[-1].folded:
            rows[-1].folded += 1
            rows[-1].folded_until = float(record.get("t", 0.0))
            continue
        if run_length > KEEP_OF_A_RUN:
            rows.append(_folded(record))
            continue
        if len(rows) >= MAX_ROWS:
            return WireLog(rows, len(records), True, bad)
        rows.append(_row(record))
    return WireLog(rows, len(records), False, bad)


def _row(record: dict[str, Any]) -> WireRow:
    kind = str(record.get("kind", "?"))
    data = record.get("data")
    if "type" in record and kind != "fault":
        payload = json.dumps(data, indent=2, ensure_ascii=False, default=repr)
        summary = json.dumps(data, ensure_ascii=False, default=repr)
    elif record.get("frames_hex"):
        frames = [str(f) for f in record["frames_hex"]]
        payload = "\n".join(f"frame {i}: {f}" for i, f in enumerate(frames))
        summary = f"<undecodable, {record.get('size', 0)} bytes> {frames[-1][:48]}"
    else:
        summary = str(record.get("note", ""))
        payload = summary if len(summary) > SUMMARY_CHARS else ""
    if kind == "fault" and "type" in record:
        summary = f"{record['type']}: {record.get('note', '')}"
    if len(payload) > PAYLOAD_CHARS:
        payload = payload[:PAYLOAD_CHARS] + f"\n... ({len(payload) - PAYLOAD_CHARS} more characters in trace.jsonl)"
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    violations = [_violation(v) for v in record.get("violations", []) if isinstance(v, dict)]
    return WireRow(
        int(record.get("seq", -1)),
        float(record.get("t", 0.0)),
        kind,
        ARROWS.get(kind, kind),
        str(record.get("type", "")),
        int(record.get("size", 0) or 0),
        summary,
        payload if payload != summary else "",
        violations,
    )


def _folded(record: dict[str, Any]) -> WireRow:
    row = _row(record)
    row.folded = 1
    row.folded_until = row.t
    row.payload = ""
    return row


def _violation(v: dict[str, Any]) -> str:
    if "rule" not in v:
        return json.dumps(v)
    return f"{v.get('severity', '?')} [{v['rule']}]: expected {v.get('expected', '?')}; observed {v.get('observed', '?')}"

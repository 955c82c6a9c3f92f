"""The case page's wire log: every record shown or folded into a counted row, damage counted, not fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report import wirelog
from harness.report.wirelog import KEEP_OF_A_RUN, read_wire_log


def _write(path: Path, records: list[dict[str, Any]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return path


def _send(seq: int, t: float, type_: str = "noise") -> dict[str, Any]:
    return {"seq": seq, "t": t, "kind": "send", "type": type_, "data": {"n": seq}, "node_id": "w", "size": 20}


def test_runs_of_alike_records_are_folded_and_counted(tmp_path: Path) -> None:
    records = [{"seq": 0, "t": 0.0, "kind": "note", "note": "master bound"}]
    records += [_send(i, i / 100) for i in range(1, 101)]
    records.append({"seq": 101, "t": 1.5, "kind": "recv", "type": "heartbeat", "data": {"state": "ready"}, "node_id": "w"})
    log = read_wire_log(_write(tmp_path / "trace.jsonl", records))
    assert log.records == 102 and not log.truncated
    shown = [r for r in log.rows if not r.folded]
    folded = [r for r in log.rows if r.folded]
    assert len(shown) == 1 + KEEP_OF_A_RUN + 1 and len(folded) == 1
    assert folded[0].folded == 100 - KEEP_OF_A_RUN and folded[0].folded_until == 1.0
    assert sum(1 for _ in shown) + folded[0].folded == 102, "every record is shown or counted"
    assert log.rows[-1].type == "heartbeat" and '"state": "ready"' in log.rows[-1].payload


def test_violations_are_never_folded(tmp_path: Path) -> None:
    records = [
        {**_send(i, i / 10), "violations": [{"rule": "schema", "expected": "a", "observed": "b", "severity": "error"}]}
        for i in range(10)
    ]
    log = read_wire_log(_write(tmp_path / "trace.jsonl", records))
    assert len(log.rows) == 10 and all(r.violations == ["error [schema]: expected a; observed b"] for r in log.rows)


def test_damaged_lines_are_counted_and_undecodable_frames_shown(tmp_path: Path) -> None:
    records = [{"seq": 0, "t": 0.1, "kind": "recv", "frames_hex": ["77", "c1c1"], "size": 2}]
    log = read_wire_log(_write(tmp_path / "trace.jsonl", records, "{not json\n[1, 2]\n"))
    assert log.unreadable_lines == 2
    assert "undecodable, 2 bytes" in log.rows[0].summary and "frame 1: c1c1" in log.rows[0].payload
    assert read_wire_log(tmp_path / "missing.jsonl").rows == []


def test_a_huge_trace_stops_at_the_row_limit(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(wirelog, "MAX_ROWS", 20)
    records = [_send(i, i / 10, "noise" if i % 2 else "other") for i in range(50)]  # alternating: nothing folds
    log = read_wire_log(_write(tmp_path / "trace.jsonl", records))
    assert log.truncated and len(log.rows) == 20 and log.records == 50


def test_notes_of_messages_are_shown_and_state_changes_are_never_folded(tmp_path: Path) -> None:
    beats = [
        {"seq": i, "t": i / 10, "kind": "recv", "type": "heartbeat", "data": {"state": s}, "node_id": "w", "identity": "w"}
        for i, s in enumerate(["ready"] * 6 + ["running"] * 6 + ["stopped"])
    ]
    failed = {"seq": 13, "t": 2.0, "kind": "send-failed", "type": "spawn", "data": {}, "note": "no such peer (EHOSTUNREACH)"}
    log = read_wire_log(_write(tmp_path / "trace.jsonl", [*beats, failed]))
    states = [r.summary for r in log.rows if not r.folded and r.type == "heartbeat"]
    assert sum('"running"' in s for s in states) == KEEP_OF_A_RUN and any('"stopped"' in s for s in states)
    assert sum(r.folded for r in log.rows) == 2 * (6 - KEEP_OF_A_RUN)
    assert "no such peer (EHOSTUNREACH)" in log.rows[-1].summary and "no such peer" in log.rows[-1].payload
    assert log.rows[0].identity == "w"


def test_records_of_the_wrong_shape_are_counted_not_fatal(tmp_path: Path) -> None:
    odd = [
        {"seq": "x", "t": None, "kind": "send", "type": "spawn", "size": "big"},
        {"seq": 1, "t": 0.1, "kind": "recv", "frames_hex": 7, "violations": 5},
        {"seq": 2, "t": float("nan"), "kind": "note", "note": None},
    ]
    log = read_wire_log(_write(tmp_path / "trace.jsonl", odd, "\n"))
    assert log.records == 3 and len(log.rows) == 3 and log.unreadable_lines == 0
    assert log.rows[0].seq == -1 and log.rows[0].t == 0.0 and log.rows[0].size == 0
    assert log.rows[1].violations == ["5"]
    missing = read_wire_log(tmp_path / "nowhere" / "trace.jsonl")
    assert missing.missing and missing.rows == []


def test_the_workers_output_lines_are_rows_in_time_order(tmp_path: Path) -> None:
    """Lines the worker printed sit among the frames at the time they were read (Kind.OUTPUT records)."""
    records = [
        {"seq": 0, "t": 0.10, "kind": "recv", "type": "client_ready", "data": "2.47.0", "node_id": "w"},
        {"seq": 1, "t": 0.12, "kind": "output", "note": 'Exception in thread "zmq-receiver" org.zeromq.ZMQException'},
        {"seq": 2, "t": 0.15, "kind": "send", "type": "ack", "data": {"index": 0}, "node_id": "w"},
    ]
    rows = read_wire_log(_write(tmp_path / "trace.jsonl", records)).rows
    assert [(r.kind, r.arrow) for r in rows] == [("recv", "W→M"), ("output", "W out"), ("send", "M→W")]
    assert rows[1].summary.startswith('Exception in thread "zmq-receiver"')

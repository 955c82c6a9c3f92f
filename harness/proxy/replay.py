"""A recorded conversation played back: the master's side of one worker connection of a trace, as a fake-master
script (``fakemaster.script``'s JSON format) to run against a worker or to keep as a regression test.

Pure: trace records (the dicts of a ``trace.jsonl``, ``harness.trace.TraceRecord.to_json``) in, a script dict out;
no socket, no clock, no file. The command (``locust-conformance replay``) is ``harness.proxy.replay_cli``.

How a recording becomes steps, in the order the records came (``seq``):

* the master's automatic replies (``ack``, heartbeat replies) are the fake master's own behaviours, not steps; a
  recording without any heartbeat reply (or any ack) switches that behaviour off first (``auto``);
* every other message the master delivered (``send`` records: spawn, stop, quit, reconnect, spawning_complete,
  custom messages...) becomes a ``send`` step with the recorded data (a spawn's ``timestamp`` as ``"$now"``, the
  worker's node id as ``"$worker"``); an undecodable one (``frames_hex``) a ``send_raw`` step;
* before it, an ``expect`` step for each worker message since the master's previous message that the master acts on
  (``ANSWERS``: client_ready, spawning_complete with its user count, client_stopped, quit; heartbeats, stats and
  logs are not expected one by one), then a ``sleep`` for the recorded delay since the step before it (the
  worker's message the replay waited for, or the master's previous message): the timing relative to the worker's;
* at the end, the worker's answers to the last message (after the master's ``quit``: the worker's quit, if it sent
  one, and ``expect_exit``); a recording that goes on after its last message is slept through to its last worker
  message, so the replay lasts as long.

A worker's reply to ``reconnect`` is a new connection, not a message (Locust 2.47's worker, as the reference
worker, sends no new client_ready): after a ``reconnect`` the script waits for a new connection
(``expect_connection``) and then for a heartbeat over it (a new connection that lost the race for its identity, which
the master's ROUTER ignores, carries nothing).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from harness.errors import ScenarioError
from harness.protocol.messages import Message
from harness.trace import Kind, TraceRecord

AUTO_REPLIES = frozenset({"ack", "heartbeat"})  # the fake master's automatic behaviours, never steps
# Worker messages a replay waits for: the ones the master acts on. Heartbeats, stats, logs and spawning are not
# expected one by one (their number and timing are the worker's own, judged by the oracles, not by a script).
ANSWERS = ("client_ready", "spawning_complete", "client_stopped", "quit")
RECONNECT = "reconnect"  # answered by a new connection: expect_connection, then a heartbeat over it
TIMESTAMPED = "spawn"  # its data's "timestamp" is sent fresh ("$now"): a worker ignores a spawn older than its last
NOW, WORKER = "$now", "$worker"
KINDS = frozenset(k.value for k in Kind)
DEFAULT_INTERVAL = 1.0  # Locust's heartbeat interval, when the recording does not say
STARTUP_WITHIN = 10.0  # the first client_ready: the worker has just started
MIN_SLACK = 2.0  # seconds an expected message may come later than it did in the recording, at least ...
SLACK_INTERVALS = 3  # ... or this many heartbeat intervals
EXIT_WITHIN = 5.0  # after the master's quit, the worker process ends within this (+ its spawn's stop_timeout)
MIN_SLEEP = 0.001


def parse_trace(text: str, source: str = "trace") -> list[dict[str, Any]]:
    """The records of a ``trace.jsonl`` text; anything else is a ScenarioError naming the line."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ScenarioError(f"{source} is not a trace (JSON lines of trace records): line {number}: {exc}") from None
        problem = _record_problem(record)
        if problem:
            raise ScenarioError(f"{source} is not a trace (JSON lines of trace records): line {number}: {problem}")
        records.append(record)
    if not records:
        raise ScenarioError(f"{source} is not a trace: it holds no records")
    return records


def _record_problem(record: Any) -> str:
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}"
    if record.get("kind") not in KINDS:
        return f"'kind' must be one of {', '.join(sorted(KINDS))}, got {record.get('kind')!r}"
    seq, t = record.get("seq"), record.get("t")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return f"'seq' must be an integer, got {seq!r}"
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        return f"'t' must be a number of seconds, got {t!r}"
    for key in ("identity", "type", "node_id", "note"):
        if key in record and record[key] is not None and not isinstance(record[key], str):
            return f"{key!r} must be a string, got {record[key]!r}"
    frames = record.get("frames_hex", [])
    if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
        return f"'frames_hex' must be a list of hex strings, got {frames!r}"
    return ""


def _is_message(record: Mapping[str, Any]) -> bool:
    return record["kind"] in ("recv", "send", "send-failed") and bool(record.get("identity"))


def connections(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The worker identities of a trace, in the order each was first heard or sent to."""
    seen: dict[str, None] = {}
    for record in records:
        if _is_message(record):
            seen.setdefault(record["identity"], None)
    return list(seen)


_CASE_ID = re.compile(r"^(?:proxy(?:/|__))?0*(?P<n>\d+)(?:-.*)?$")


def pick_connection(records: list[dict[str, Any]], wanted: str | None = None) -> str:
    """The identity to replay: ``wanted`` (an identity, or a connection's number or case id as the proxy's report
    names it: ``2``, ``proxy/02-...``, ``proxy__02-...``); by default the first connection that sent a client_ready."""
    identities = connections(records)
    if not identities:
        raise ScenarioError("the trace holds no worker connection (no message to or from a worker)")
    if wanted is None:
        ready = next(
            (r["identity"] for r in records if _is_message(r) and r["kind"] == "recv" and r.get("type") == "client_ready"), None
        )
        if ready is None:
            raise ScenarioError(
                f"no connection of the trace sent a client_ready (connections: {', '.join(identities)}); "
                "name one with --connection"
            )
        return str(ready)
    if wanted in identities:
        return wanted
    match = _CASE_ID.match(wanted)
    if match and 1 <= int(match["n"]) <= len(identities):
        return identities[int(match["n"]) - 1]
    listed = ", ".join(f"{i}: {name}" for i, name in enumerate(identities, 1))
    raise ScenarioError(f"--connection {wanted!r}: no such connection in the trace (connections: {listed})")


def to_script(
    records: list[dict[str, Any]],
    identity: str | None = None,
    *,
    heartbeat_interval: float = DEFAULT_INTERVAL,
    source: str = "",
    name: str | None = None,
) -> dict[str, Any]:
    """The fake-master script that plays the master's side of ``identity``'s conversation (default: the first
    connection with a client_ready). A connection the master sent nothing but its automatic replies is a
    ScenarioError: there is nothing to replay."""
    if not (isinstance(heartbeat_interval, (int, float)) and heartbeat_interval > 0 and math.isfinite(heartbeat_interval)):
        raise ScenarioError(f"heartbeat interval must be a positive number of seconds, got {heartbeat_interval!r}")
    chosen = pick_connection(records, identity)
    mine = sorted((r for r in records if _is_message(r) and r["identity"] == chosen), key=lambda r: r["seq"])
    worker_id = next((r["node_id"] for r in mine if r.get("node_id")), chosen)
    sent = [r for r in mine if r["kind"] == "send"]
    heard = [r for r in mine if r["kind"] == "recv"]
    steps_to_replay = [r for r in sent if r.get("type") not in AUTO_REPLIES]
    if not steps_to_replay:
        what = ", ".join(sorted({str(r.get("type")) for r in sent})) or "nothing"
        raise ScenarioError(
            f"connection {chosen!r}: the master sent it no message to replay (only its automatic replies: {what})"
        )
    slack = max(MIN_SLACK, SLACK_INTERVALS * float(heartbeat_interval))
    steps: list[dict[str, Any]] = []
    if any(r.get("type") == "heartbeat" for r in heard) and not any(r.get("type") == "heartbeat" for r in sent):
        steps.append({"auto": {"heartbeat": False}})  # a master that never answered heartbeats (before 2.19)
    if any(r.get("type") == "client_ready" for r in heard) and not any(r.get("type") == "ack" for r in sent):
        steps.append({"auto": {"ack": False}})  # a master that never acked (before 2.10)
    undelivered = [r for r in mine if r["kind"] == "send-failed"]
    anchor = heard[0]["t"] if heard else mine[0]["t"]  # the replay starts once the worker's first message is in
    stop_timeout = 0.0
    pending: list[dict[str, Any]] = []  # worker messages since the master's previous message
    last: dict[str, Any] | None = None
    for record in mine:
        if record["kind"] == "recv":
            pending.append(record)
            continue
        if record["kind"] != "send" or record.get("type") in AUTO_REPLIES:
            continue
        anchor = _expect_answers(steps, pending, anchor, slack, stop_timeout, first=last is None)
        pending = []
        delay = record["t"] - anchor
        if delay >= MIN_SLEEP:
            steps.append({"sleep": round(delay, 3)})
        steps.append(_send_step(record, worker_id))
        anchor, last = record["t"], record
        if record.get("type") == RECONNECT:
            steps += [{"expect_connection": True, "within": round(slack, 3)}, {"expect": "heartbeat", "within": round(slack, 3)}]
        if record.get("type") == TIMESTAMPED and isinstance(record.get("data"), dict):
            timeout = record["data"].get("stop_timeout")
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout >= 0:
                stop_timeout = float(timeout)
    assert last is not None
    answered = len(steps)
    anchor = _expect_answers(steps, pending, anchor, slack, stop_timeout, first=False)
    if last.get("type") == "quit":
        steps.append({"expect_exit": None, "within": round(max(EXIT_WITHIN, slack) + stop_timeout, 3)})
    else:  # the worker went on without an answer we wait for: play the tail too
        tail = pending[-1]["t"] - anchor if pending and len(steps) == answered else 0.0
        if tail >= MIN_SLEEP:
            steps.append({"sleep": round(tail, 3)})
    duration = mine[-1]["t"] - mine[0]["t"]
    script: dict[str, Any] = {
        "name": name or f"replay-{_slug(chosen)}",
        "description": f"the master's side of worker connection {chosen!r}"
        + (f" recorded in {source}" if source else "")
        + f", replayed with its timing ({duration:.1f} s recorded); written by 'locust-conformance replay'",
        "heartbeat_interval": float(heartbeat_interval),
        "replay": {
            "source": source,
            "connection": chosen,
            "worker_id": worker_id,
            "master_messages": [r.get("type") or "undecodable" for r in steps_to_replay],
            "undelivered": [r.get("type") or "undecodable" for r in undelivered],
            "recorded_s": round(duration, 3),
        },
        "steps": steps,
    }
    return script


def _expect_answers(
    steps: list[dict[str, Any]],
    pending: list[dict[str, Any]],
    anchor: float,
    slack: float,
    stop_timeout: float,
    *,
    first: bool,
) -> float:
    """Append an ``expect`` for each worker message of ``pending`` the master acts on (a client_ready repeated
    before the master's next message, as a worker retries it until acked, once); returns the new anchor."""
    ready_seen = False
    for record in pending:
        kind = record.get("type")
        if kind not in ANSWERS:
            continue
        if kind == "client_ready":
            if ready_seen:
                continue
            ready_seen = True
        within = record["t"] - anchor + slack
        if kind in ("client_stopped", "quit"):
            within += stop_timeout
        if first and kind == "client_ready":
            within = max(within, STARTUP_WITHIN)
        step: dict[str, Any] = {"expect": kind, "within": round(within, 3)}
        data = record.get("data")
        if kind == "spawning_complete" and isinstance(data, dict) and _is_count(data.get("user_count")):
            step["where"] = {"user_count": data["user_count"]}
        steps.append(step)
        anchor = record["t"]
    return anchor


def _send_step(record: Mapping[str, Any], worker_id: str) -> dict[str, Any]:
    kind = record.get("type")
    if kind is None:
        frames = record.get("frames_hex") or []
        if not frames:
            raise ScenarioError(f"record {record['seq']}: a message to the worker with neither a type nor frames")
        return {"send_raw": list(frames)}
    step: dict[str, Any] = {"send": kind}
    data = _with_worker(record.get("data"), worker_id)
    if kind == TIMESTAMPED and isinstance(data, dict) and "timestamp" in data:
        data = {**data, "timestamp": NOW}
    if data is not None:
        step["data"] = data
    return step


def _with_worker(value: Any, worker_id: str) -> Any:
    """``value`` with every string equal to the worker's node id as ``"$worker"`` (the replayed worker's own)."""
    if isinstance(value, str):
        return WORKER if value == worker_id else value
    if isinstance(value, dict):
        return {k: _with_worker(v, worker_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_worker(v, worker_id) for v in value]
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _slug(identity: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", identity.lower()).strip("-")[:60] or "worker"


def records_from_json(records: Iterable[Mapping[str, Any]]) -> list[TraceRecord]:
    """Trace records read back from their JSON (messages and notes; frames and violations are left out): what the
    oracles that read connection notes and messages (``harness.oracles.connections``) need."""
    out = []
    for r in records:
        message = Message(r["type"], r.get("data"), r.get("node_id") or "") if r.get("type") is not None else None
        out.append(
            TraceRecord(r["seq"], float(r["t"]), Kind(r["kind"]), r.get("identity") or "", message, note=r.get("note") or "")
        )
    return out

"""Tests of harness.oracles: every oracle on a conformant worker's trace, and on the traces buggy workers leave.

Pure and fast: traces are built by hand. Received frames go through ``MasterCore.inspect`` (as the fake
master records them), so their violations are the real ones. Times are seconds on the trace clock; unless
said otherwise the timing is Locust's own (1 s heartbeats, missing after 4-5 s, replies within 4 s).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

import pytest

from harness.oracles import (
    CRASH_SIGNALS,
    DEFAULT_ORACLES,
    Evidence,
    Oracle,
    check_exit_after_quit,
    check_final_stats_on_quit,
    check_heartbeat_liveness,
    check_protocol_order,
    check_replies,
    check_schema,
    check_socket_safety,
    check_stats,
    check_stats_deltas,
    excused_windows,
    judge,
    judge_run,
    overload_tolerance,
)
from harness.oracles import SHUTDOWN_NOTE
from harness.output import OutputLine
from harness.protocol.codec import encode, encode_parts
from harness.protocol.master import MasterCore
from harness.protocol.messages import Message, MessageType
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.trace import Kind, Trace, fault_windows, window_note
from harness.verdicts import Finding, Verdict, worst

NODE = "w_1"
USER = "ConformanceUser"
VERSION = "2.47.0"
WALL = 1_700_000_000.0  # the master's wall clock at t=0, for spawn timestamps and per-second stats keys

M = MessageType
FAILED, NON_STRICT, INFORMATIONAL, UNKNOWN = Verdict.FAILED, Verdict.NON_STRICT, Verdict.INFORMATIONAL, Verdict.UNKNOWN

# What a healthy Locust worker prints (spec §3.9): nothing an output oracle may object to.
LOCUST_OUTPUT = "\n".join(
    [
        "[2024-01-02 03:04:05,678] host/INFO/locust.main: Starting Locust 2.47.0",
        "[2024-01-02 03:04:06,001] host/INFO/locust.runners: Got quit message from master, shutting down...",
        "[2024-01-02 03:04:06,050] host/INFO/locust.main: Shutting down (exit code 0)",
    ]
)


# --------------------------------------------------------------------------------------------
# A small trace builder
# --------------------------------------------------------------------------------------------


class TraceBuilder:
    """Collects records in any order; ``evidence`` replays them into a real Trace sorted by time."""

    def __init__(self, t0: float = 0.0) -> None:
        self.t0 = t0
        self.core = MasterCore()
        self._pending: list[tuple[float, Kind, dict[str, Any]]] = []

    def _add(self, t: float, kind: Kind, **fields: Any) -> None:
        self._pending.append((self.t0 + t, kind, fields))

    # -- worker -> master -----------------------------------------------------------------------

    def recv_frames(self, t: float, frames: Sequence[bytes], identity: str = NODE) -> None:
        """Record received payload frames exactly as the fake master does (frames kept when broken)."""
        inbound = self.core.inspect(identity.encode(), list(frames))
        broken = inbound.message is None or any(v.severity is Severity.ERROR for v in inbound.violations)
        self._add(
            t,
            Kind.RECV,
            identity=identity,
            message=inbound.message,
            frames=tuple(frames) if broken else (),
            size=sum(len(f) for f in frames),
            violations=inbound.violations,
        )

    def recv(self, t: float, type_: str, data: Any = None, node_id: str = NODE) -> None:
        self.recv_frames(t, [encode_parts(str(type_), data, node_id)])

    def heartbeat(self, t: float, state: str = "ready") -> None:
        self.recv(t, M.HEARTBEAT, {"state": state, "current_cpu_usage": 1.5, "current_memory_usage": 50_000_000})

    def heartbeats(self, start: float, stop: float, state: str = "ready", every: float = 1.0) -> None:
        """Heartbeats at start, start + every, ... while before ``stop``."""
        k = 0
        while start + k * every < stop - 1e-9:
            self.heartbeat(start + k * every, state)
            k += 1

    def complete(self, t: float, counts: dict[str, int]) -> None:
        self.recv(t, M.SPAWNING_COMPLETE, {"user_classes_count": counts, "user_count": sum(counts.values())})

    def stats(self, t: float, report: dict[str, Any]) -> None:
        self.recv(t, M.STATS, report)

    # -- master -> worker -----------------------------------------------------------------------

    def send(self, t: float, type_: str, data: Any = None) -> None:
        message = Message(str(type_), data, NODE)
        self._add(t, Kind.SEND, identity=NODE, message=message, size=len(encode(message)))

    def ack(self, t: float, index: int = 0) -> None:
        self.send(t, M.ACK, {"index": index})

    def spawn(self, t: float, counts: dict[str, int], timestamp: float | None = None) -> None:
        self.send(
            t,
            M.SPAWN,
            {
                "timestamp": WALL + t if timestamp is None else timestamp,
                "user_classes_count": counts,
                "host": None,
                "stop_timeout": 0.0,
                "parsed_options": {},
            },
        )

    # -- the master's own notes -----------------------------------------------------------------

    def liveness(self, t: float, note: str = "missing") -> None:
        self._add(t, Kind.LIVENESS, identity=NODE, note=note)

    def fault(self, t: float, note: str) -> None:
        self._add(t, Kind.FAULT, note=note)

    def note(self, t: float, note: str) -> None:
        self._add(t, Kind.NOTE, note=note)

    # -- the result -------------------------------------------------------------------------------

    def trace(self) -> Trace:
        trace = Trace(t0=self.t0)
        for t, kind, fields in sorted(self._pending, key=lambda p: p[0]):
            trace.append(t, kind, **fields)
        return trace

    def evidence(self, end: float, timing: Timing = LOCUST_TIMING, output_at: float = 1.0, **kw: Any) -> Evidence:
        """The evidence up to ``end``; an ``output`` given as text was printed at ``output_at`` (one line each)."""
        if isinstance(kw.get("output"), str):
            kw["output"] = [OutputLine(self.t0 + output_at, line) for line in kw["output"].splitlines()]
        return Evidence(self.trace().records(), self.t0, timing, self.t0 + end, **kw)


def registered(hb_start: float | None = 0.5, hb_stop: float | None = None, **kw: Any) -> TraceBuilder:
    """client_ready at 0, ack at 0.001, then (optionally) heartbeats every second from ``hb_start``."""
    b = TraceBuilder(**kw)
    b.recv(0.0, M.CLIENT_READY, VERSION)
    b.ack(0.001)
    if hb_start is not None and hb_stop is not None:
        b.heartbeats(hb_start, hb_stop)
    return b


def entry(name: str = "/ConformanceUser", n: int = 0, *, none: int = 0, failures: int = 0) -> dict[str, Any]:
    """A stats entry as Locust serialises it, internally consistent: n requests, ``none`` of them untimed."""
    timed = n - none
    return {
        "name": name,
        "method": "GET",
        "last_request_timestamp": WALL if n else None,
        "start_time": WALL,
        "num_requests": n,
        "num_none_requests": none,
        "num_failures": failures,
        "total_response_time": 42.0 * timed,
        "max_response_time": 42.0 if timed else 0,
        "min_response_time": 42.0 if timed else None,
        "total_content_length": 42 * n,
        "response_times": {42: timed} if timed else {},
        "num_reqs_per_sec": {int(WALL): n} if n else {},
        "num_fail_per_sec": {int(WALL): failures} if failures else {},
    }


def total_of(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The Aggregated entry Locust sends along with ``entries``."""
    total = entry(
        "Aggregated",
        sum(e["num_requests"] for e in entries),
        none=sum(e["num_none_requests"] for e in entries),
        failures=sum(e["num_failures"] for e in entries),
    )
    total["method"] = ""
    return total


def report(*entries: dict[str, Any], users: int = 0, total: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "stats": list(entries),
        "stats_total": total_of(entries) if total is None else total,
        "errors": {},
        "user_classes_count": {USER: users},
        "user_count": users,
    }


def conformant_session(i: float = 1.0) -> tuple[Evidence, float]:
    """A Locust-like worker's whole life, with every time scaled by the heartbeat interval ``i``.

    Handshake, spawn 2 users, stop -> client_stopped -> client_ready, spawn 1 user, quit with a final
    report and exit 0. Heartbeats every interval at k + 0.5, in the state Locust reports (§4.1). The
    harness keeps watching until 15 intervals (the worker is gone by then).
    """
    b = TraceBuilder()
    b.recv(0.0, M.CLIENT_READY, VERSION)
    b.ack(0.001 * i)
    states = ["ready"] * 2 + ["running"] * 4 + ["ready"] * 2 + ["running"] * 2
    for k, state in enumerate(states):
        b.heartbeat((k + 0.5) * i, state)
    b.stats(0.01 * i, report())
    b.spawn(2.0 * i, {USER: 2})
    b.recv(2.01 * i, M.SPAWNING)
    b.complete(2.05 * i, {USER: 2})
    b.stats(3.01 * i, report(entry(n=5), users=2))
    b.send(6.0 * i, M.STOP)
    b.recv(6.01 * i, M.STATS, report(entry(n=3, none=1), users=0))
    b.recv(6.02 * i, M.CLIENT_STOPPED)
    b.recv(6.03 * i, M.CLIENT_READY, VERSION)
    b.ack(6.031 * i)
    b.spawn(8.0 * i, {USER: 1})
    b.recv(8.01 * i, M.SPAWNING)
    b.complete(8.05 * i, {USER: 1})
    b.stats(9.01 * i, report(entry(n=4), entry("/other", 2, failures=1), users=1))
    b.send(10.0 * i, M.QUIT)
    b.stats(10.02 * i, report(entry(n=1), users=0))
    b.recv(10.03 * i, M.QUIT)
    timing = LOCUST_TIMING if i == 1.0 else LOCUST_TIMING.compressed(i)
    return b.evidence(15.0 * i, timing, exit_code=0, output=LOCUST_OUTPUT), 6.0 * i


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def by_oracle(findings: list[Finding], oracle: str) -> Finding:
    hits = [f for f in findings if f.oracle == oracle]
    assert len(hits) == 1, findings
    return hits[0]


ALL_ORACLES: list[Oracle] = [*DEFAULT_ORACLES, lambda ev: check_exit_after_quit(ev, within=6.0)]


# --------------------------------------------------------------------------------------------
# A conformant worker: no oracle objects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("oracle", ALL_ORACLES, ids=[*(o.__name__ for o in DEFAULT_ORACLES), "check_exit_after_quit"])
def test_each_oracle_passes_a_conformant_session(oracle: Oracle) -> None:
    ev, _ = conformant_session()
    assert oracle(ev) == []


@pytest.mark.parametrize("interval", [1.0, 0.25, 0.05])
def test_judge_passes_a_conformant_session_at_any_compression(interval: float) -> None:
    ev, within = conformant_session(interval)
    assert judge(ev) == []
    assert check_exit_after_quit(ev, within=within) == []


def test_default_oracles_are_the_documented_set() -> None:
    assert {o.__name__ for o in DEFAULT_ORACLES} == {
        "check_heartbeat_liveness",
        "check_socket_safety",
        "check_schema",
        "check_protocol_order",
        "check_replies",
        "check_stats",
        "check_stats_deltas",
        "check_final_stats_on_quit",
        "check_master_crash",
    }


# --------------------------------------------------------------------------------------------
# Evidence
# --------------------------------------------------------------------------------------------


def test_evidence_views() -> None:
    ev, _ = conformant_session()
    assert ev.node_id == NODE
    assert [r.type for r in ev.sent(M.SPAWN, M.STOP)] == [M.SPAWN, M.STOP, M.SPAWN]
    assert len(ev.received(M.CLIENT_READY)) == 2
    assert all(r.kind is Kind.RECV for r in ev.received())
    assert ev.rel(ev.t0 + 2.5) == 2.5


def test_evidence_node_id_skips_undecodable_frames() -> None:
    b = TraceBuilder()
    b.recv_frames(0.0, [b"\xc1garbage"])
    assert b.evidence(1.0).node_id is None
    b.recv(0.1, M.CLIENT_READY, VERSION)
    assert b.evidence(1.0).node_id == NODE


def test_evidence_exempted_means_overlap_not_touch() -> None:
    ev = TraceBuilder().evidence(10.0, exempt=[(5.0, 6.0, "w")])
    assert ev.exempted(4.0, 5.5) and ev.exempted(5.5, 7.0) and ev.exempted(4.0, 7.0) and ev.exempted(5.2, 5.4)
    assert not ev.exempted(6.0, 7.0)
    assert not ev.exempted(4.0, 5.0)


# --------------------------------------------------------------------------------------------
# check_heartbeat_liveness
# --------------------------------------------------------------------------------------------


def test_heartbeat_regular_cadence_is_clean() -> None:
    assert check_heartbeat_liveness(registered(0.5, 10.0).evidence(10.0)) == []


def test_heartbeat_gap_above_one_and_a_half_intervals_is_non_strict() -> None:
    b = registered()
    for t in (0.5, 1.5, 2.5, 4.1, 5.1, 6.1):  # 2.5 -> 4.1: 1.6 s
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(6.5)))
    assert (f.oracle, f.verdict) == ("heartbeat.gap", NON_STRICT)
    assert f.observed == "a 1.600 s gap"
    assert "1.520 s" in f.expected  # 1.5 intervals plus the harness's own 20 ms jitter allowance
    assert f.at == pytest.approx(2.5)


def test_heartbeat_gap_of_exactly_one_and_a_half_intervals_is_tolerated() -> None:
    b = registered()
    for t in (0.5, 2.0, 3.5, 5.0):
        b.heartbeat(t)
    assert check_heartbeat_liveness(b.evidence(5.5)) == []


def test_heartbeat_gap_scales_with_the_compressed_interval() -> None:
    timing = LOCUST_TIMING.compressed(0.25)
    b = registered(hb_start=None)
    for t in (0.1, 0.35, 0.6, 1.0, 1.25):  # 0.6 -> 1.0: 0.4 s > 0.375 s
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(1.4, timing)))
    assert (f.oracle, f.verdict) == ("heartbeat.gap", NON_STRICT)
    assert f.observed == "a 0.400 s gap"
    assert "0.395 s" in f.expected


def test_heartbeat_reports_the_worst_gap() -> None:
    b = registered()
    for t in (0.5, 2.2, 3.2, 5.1, 6.1):  # gaps 1.7 and 1.9
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(6.5)))
    assert f.observed == "a 1.900 s gap"
    assert f.at == pytest.approx(3.2)


def test_heartbeat_missing_record_is_failed_and_names_the_silence() -> None:
    b = registered(0.5, 2.5)  # beats at 0.5, 1.5
    b.liveness(6.0, "missing")
    b.heartbeats(6.2, 9.0)
    f = only(check_heartbeat_liveness(b.evidence(9.0)))
    assert (f.oracle, f.verdict) == ("heartbeat.missing", FAILED)
    assert "4.500 s of silence" in f.observed
    assert "last heartbeat at t=1.500s" in f.observed
    assert "4 s" in f.expected
    assert f.at == pytest.approx(6.0)


def test_heartbeat_missing_record_without_any_heartbeat() -> None:
    b = registered(hb_start=None)
    b.liveness(4.5, "missing")
    f = only(check_heartbeat_liveness(b.evidence(4.6)))
    assert (f.oracle, f.verdict) == ("heartbeat.missing", FAILED)
    assert "no heartbeat had arrived at all" in f.observed


def test_heartbeat_healed_record_alone_is_not_a_finding() -> None:
    b = registered(0.5, 6.0)
    b.liveness(3.0, "healed")
    assert check_heartbeat_liveness(b.evidence(6.0)) == []


def test_heartbeat_gap_beyond_missing_after_max_without_a_liveness_record_is_failed() -> None:
    b = registered()
    for t in (0.5, 1.5, 7.5, 8.5):  # 6 s > 5 s, yet no LIVENESS record (e.g. a master that did not track it)
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(9.0)))
    assert (f.oracle, f.verdict) == ("heartbeat.missing", FAILED)
    assert f.observed == "a 6.000 s gap without heartbeats"
    assert "5 s" in f.expected
    assert f.at == pytest.approx(1.5)


def test_heartbeat_gap_between_the_non_strict_limit_and_missing_is_only_non_strict() -> None:
    b = registered()
    for t in (0.5, 1.5, 6.3, 7.3):  # 4.8 s: the master might or might not have marked it missing
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(7.5)))
    assert (f.oracle, f.verdict) == ("heartbeat.gap", NON_STRICT)
    assert f.observed == "a 4.800 s gap"


def test_heartbeat_missing_record_and_long_gap_give_one_finding() -> None:
    b = registered()
    for t in (0.5, 1.5, 8.5):
        b.heartbeat(t)
    b.liveness(6.2, "missing")
    f = only(check_heartbeat_liveness(b.evidence(9.0)))
    assert (f.oracle, f.verdict) == ("heartbeat.missing", FAILED)
    assert "4.700 s of silence" in f.observed  # named at the moment the rule fired


def test_heartbeat_gaps_inside_an_exempt_window_are_ignored() -> None:
    b = registered()
    for t in (0.5, 1.5, 8.5, 9.5):
        b.heartbeat(t)
    b.liveness(6.2, "missing")
    ev = b.evidence(10.0, exempt=[(2.0, 8.0, "master not reading")])
    assert check_heartbeat_liveness(ev) == []


def test_heartbeat_gap_outside_the_exempt_window_still_counts() -> None:
    b = registered()
    for t in (0.5, 1.5, 6.0, 7.0, 8.7):  # 1.5 -> 6.0 exempt; 7.0 -> 8.7 (1.7 s) is not
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(9.0, exempt=[(2.0, 5.0, "restart")])))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.gap", NON_STRICT, "a 1.700 s gap")


def test_heartbeat_trailing_silence_up_to_end_counts() -> None:
    b = registered(0.5, 3.0)  # last beat at 2.5, the worker then falls silent
    f = only(check_heartbeat_liveness(b.evidence(4.5)))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.gap", NON_STRICT, "a 2.000 s gap")
    f = only(check_heartbeat_liveness(b.evidence(8.5)))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.missing", FAILED, "a 6.000 s gap without heartbeats")


def test_heartbeats_stop_counting_after_the_workers_quit() -> None:
    b = registered(0.5, 3.0)
    b.send(2.7, M.QUIT)
    b.recv(2.8, M.QUIT)
    assert check_heartbeat_liveness(b.evidence(30.0)) == []


def test_heartbeats_stop_counting_after_a_quit_of_its_own() -> None:
    """SIGTERM: the worker says quit without being asked; its silence afterwards is not a gap."""
    b = registered(0.5, 3.0)
    b.recv(2.9, M.QUIT)
    assert check_heartbeat_liveness(b.evidence(30.0)) == []


def test_heartbeat_silence_before_the_masters_quit_still_counts() -> None:
    b = registered(0.5, 3.0)
    b.send(8.0, M.QUIT)
    b.recv(8.6, M.QUIT)  # last heartbeat at 2.5: 5.5 s without one until the master's quit
    f = only(check_heartbeat_liveness(b.evidence(30.0)))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.missing", FAILED, "a 5.500 s gap without heartbeats")


def test_gaps_end_when_the_master_quits() -> None:
    """A worker that exits on the master's quit without a quit of its own: the silence after the quit is not a gap."""
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)  # last heartbeat at 4.5; the worker exits at once, the case watches until 12
    assert check_heartbeat_liveness(b.evidence(12.0, exit_code=0)) == []


def test_an_excused_window_excuses_its_own_span_only() -> None:
    """Heartbeats that never resume after a master restart are a liveness finding, not an excused silence."""
    b = registered(0.5, 3.0)
    b.fault(3.2, window_note("master-down", "start", "restart"))
    b.fault(4.0, window_note("master-down", "end"))  # up again at 4.0; no heartbeat ever after
    ev = b.evidence(12.0)
    ev.exempt = excused_windows(ev.records)
    f = only(check_heartbeat_liveness(ev))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.missing", FAILED, "a 8.000 s gap without heartbeats")
    assert f.at == pytest.approx(4.0)  # counted from the end of the window


def test_heartbeats_that_resume_after_the_window_are_fine() -> None:
    b = registered(0.5, 3.0)
    b.fault(3.2, window_note("master-down", "start", "restart"))
    b.fault(6.0, window_note("master-down", "end"))
    b.heartbeats(6.1, 12.0)
    ev = b.evidence(12.0)
    ev.exempt = excused_windows(ev.records)
    assert check_heartbeat_liveness(ev) == []


def test_heartbeat_gap_is_measured_from_the_first_ack() -> None:
    b = TraceBuilder()
    b.recv(0.0, M.CLIENT_READY, VERSION)  # never acked until 2.0: no heartbeat owed before
    b.ack(2.0)
    for t in (3.8, 4.8, 5.8):
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(6.0)))
    assert (f.oracle, f.verdict, f.observed) == ("heartbeat.gap", NON_STRICT, "a 1.800 s gap")
    assert f.at == pytest.approx(2.0)


def test_heartbeat_without_an_ack_owes_nothing() -> None:
    b = TraceBuilder()
    b.recv(0.0, M.CLIENT_READY, VERSION)
    assert check_heartbeat_liveness(b.evidence(30.0)) == []


def test_heartbeat_moments_are_relative_to_t0() -> None:
    b = registered(t0=1000.0)
    for t in (0.5, 1.5, 3.5):
        b.heartbeat(t)
    f = only(check_heartbeat_liveness(b.evidence(4.0)))
    assert f.observed == "a 2.000 s gap"
    assert f.at == pytest.approx(1.5)


def test_heartbeat_missing_before_any_ack_is_not_the_workers_fault() -> None:
    b = TraceBuilder()
    b.recv(0.0, M.CLIENT_READY, VERSION)  # no ack: the case switched auto-ack off
    b.liveness(4.6, "missing")  # the fake master's rule, ticking a worker it never acknowledged
    b.recv(5.0, M.CLIENT_READY, VERSION)  # Locust re-sends after CONNECT_TIMEOUT (5 intervals)
    b.ack(5.01)  # the case acks by hand
    b.heartbeats(5.05, 9.5)
    assert check_heartbeat_liveness(b.evidence(9.5)) == []


def test_heartbeat_stall_under_a_master_to_worker_fault_plan_is_judged() -> None:
    b = registered(0.5, 2.0)  # beats at 0.5, 1.5
    b.fault(1.6, window_note("fault-plan", "start", '{"faults": [{"kind": "drop", "types": ["heartbeat"]}]}'))
    b.liveness(6.3, "missing")
    b.heartbeats(8.5, 10.0)  # the worker stalled 7 s, waiting for the replies the plan dropped
    records = b.trace().records()
    assert fault_windows(records), "the fault-plan window is open"
    ev = Evidence(records, 0.0, LOCUST_TIMING, 10.0, exempt=excused_windows(records))  # as run_case builds it
    assert not ev.exempt, "a fault plan does not excuse the worker's heartbeats"
    assert any(f.oracle == "heartbeat.missing" and f.verdict is FAILED for f in check_heartbeat_liveness(ev))


# --------------------------------------------------------------------------------------------
# check_socket_safety
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", sorted(CRASH_SIGNALS))
def test_exit_by_a_crash_signal_is_failed(sig: signal.Signals) -> None:
    ev = registered(0.5, 3.0).evidence(3.0, exit_code=-int(sig))
    f = only(check_socket_safety(ev))
    assert (f.oracle, f.verdict) == ("socket.signal", FAILED)
    assert f"signal {int(sig)}" in f.observed


@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGSEGV])
def test_sigabrt_and_sigsegv_are_crash_signals(sig: signal.Signals) -> None:
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=-int(sig))))
    assert (f.oracle, f.verdict, f.observed.split(" (")[0]) == ("socket.signal", FAILED, f"it was killed by signal {int(sig)}")


@pytest.mark.parametrize("code", [None, 0, 1, 2, 255, -int(signal.SIGTERM), -int(signal.SIGKILL), -int(signal.SIGINT)])
def test_exit_codes_that_are_not_crashes(code: int | None) -> None:
    """A clean exit, an error exit, or a stop the harness asked for (SIGTERM/SIGKILL) is not a crash."""
    assert check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=code, killed_by_harness=code is not None)) == []


@pytest.mark.parametrize(
    ("line", "meaning"),
    [
        ("Assertion failed: !_more (src/mailbox.cpp:99)", "a libzmq assertion failure"),
        ("Assertion failed: ok (src/signaler.cpp:384)", "a libzmq assertion failure"),
        ("org.zeromq.ZMQException: Errno 156384765", "ZMQ ETERM (errno 156384765, 'Context was terminated'"),
        ("org.zeromq.ZMQException: Errno 156384763", "ZMQ EFSM (errno 156384763"),
        ("zmq.error.ZMQError: Operation cannot be accomplished in current state", "ZMQ EFSM ('Operation cannot"),
        ("zmq.error.ContextTerminated: Context was terminated", "ZMQ ETERM ('Context was terminated'"),
        ("Fatal Python error: Segmentation fault", "a fatal Python runtime error"),
        ("free(): double free detected in tcache 2", "heap corruption"),
        ("corrupted size vs. prev_size", "heap corruption"),
        ("corrupted double-linked list", "heap corruption"),
        ("malloc(): unaligned tcache chunk detected", "heap corruption"),
        ("Segmentation fault (core dumped)", "a segmentation fault"),
        ("received SIGSEGV in the I/O thread", "a segmentation fault"),
        (
            "[2024] host/CRITICAL/locust.runners: Unhandled exception in greenlet: <Greenlet at 0x7f>",
            "an uncaught exception in a greenlet",
        ),
        (
            'Exception in thread "heartbeat" java.lang.IllegalStateException: socket busy',
            "an uncaught exception that ended a thread",
        ),
        ("panic: runtime error: invalid memory address or nil pointer dereference", "a Go panic"),
        ("fatal error: concurrent map writes", "a fatal Go runtime error"),
        ("# A fatal error has been detected by the Java Runtime Environment:", "a fatal error of the Java runtime"),
    ],
)
def test_crash_lines_in_the_output_are_failed(line: str, meaning: str) -> None:
    output = f"{LOCUST_OUTPUT}\n{line}\nafter the crash\n"
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=output)))
    assert (f.oracle, f.verdict) == ("socket.output", FAILED)
    assert f.observed.startswith(meaning), f.observed
    assert f.observed.endswith(repr(line))  # just the offending line, not its neighbours
    assert f.at == 1.0  # when it was printed


def test_python_traceback_in_the_output_is_failed() -> None:
    output = (
        "[2024] host/INFO/locust.main: Starting Locust 2.47.0\n"
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/site-packages/locust/runners.py", line 1388, in handle_message\n'
        "KeyError: 'host'\n"
    )
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=output)))
    assert (f.oracle, f.verdict) == ("socket.traceback", FAILED)  # the message loop itself crashed
    assert f.observed == "an uncaught Python traceback: \"KeyError: 'host'\""


def test_a_user_task_traceback_is_only_informational() -> None:
    """Locust logs the traceback of a task that raised and carries on: not a runtime crash."""
    output = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/site-packages/locust/user/task.py", line 358, in run\n'
        "Exception: No tasks defined on ConformanceUser\n"
    )
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=output)))
    assert (f.oracle, f.verdict) == ("output.task-traceback", INFORMATIONAL)


def test_one_crash_is_one_finding_however_many_of_its_lines_name_zeromq() -> None:
    """A Java stack trace whose every frame mentions org.zeromq, and a Python traceback ending in a ZMQError, are one
    event each: one finding each, named by the errno (156384765 is ETERM, not EFSM)."""
    java = (
        'Exception in thread "zmq-receiver" org.zeromq.ZMQException: Errno 156384765 : Context was terminated\n'
        "\tat org.zeromq.ZMQ$Socket.recv(ZMQ.java:2010)\n"
        "\tat org.zeromq.ZMQ$Socket.recv(ZMQ.java:1990)\n"
        "\tat LocustJvmWorker.receive(LocustJvmWorker.java:100)\n"
        "Caused by: zmq.ZError$CtxTerminatedException\n"
        "\tat zmq.SocketBase.recv(SocketBase.java:900)\n"
        "\t... 3 more\n"
    )
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=java)))
    assert (f.oracle, f.verdict) == ("socket.output", FAILED)
    assert f.observed.startswith("ZMQ ETERM (errno 156384765, 'Context was terminated': another thread terminated the context")
    assert "EFSM" not in f.observed
    python = "Traceback (most recent call last):\nzmq.error.ZMQError: Operation cannot be accomplished in current state\n"
    findings = check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=-int(signal.SIGABRT), output=python))
    assert sorted(f.oracle for f in findings) == ["socket.output", "socket.signal"]
    assert "EFSM" in by_oracle(findings, "socket.output").observed
    assert worst(f.verdict for f in findings) is FAILED


def test_jeromq_numbers_errnos_as_bsd_does() -> None:
    """JeroMQ's EAGAIN is 35 (Linux: EDEADLK), its EHOSTUNREACH 65: the flavour is told by the text."""
    jeromq = "org.zeromq.ZMQException: Errno 35\n\tat org.zeromq.ZMQ$Socket.send(ZMQ.java:1)\n"
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=jeromq)))
    assert f.observed.startswith("ZMQ EAGAIN (errno 35"), f.observed
    libzmq = "zmq.error.ZMQError: errno 113 while sending"
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=libzmq)))
    assert f.observed.startswith("ZMQ EHOSTUNREACH (errno 113"), f.observed


def test_the_same_crash_repeated_is_one_finding_with_a_count() -> None:
    output = "\n".join(["zmq.error.ZMQError: Operation cannot be accomplished in current state"] * 5)
    f = only(check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=output)))
    assert "(5 times, the first shown)" in f.observed


def _quit_session(quit_at: float = 4.0) -> TraceBuilder:
    b = registered(0.5, quit_at - 0.5)
    b.send(quit_at, M.QUIT)
    b.stats(quit_at + 0.1, report())
    b.recv(quit_at + 0.2, M.QUIT)
    return b


ETERM_LINE = 'Exception in thread "zmq-receiver" org.zeromq.ZMQException: Errno 156384765'


def test_a_crash_while_shutting_down_after_quit_is_a_shutdown_finding() -> None:
    b = _quit_session(4.0)
    ev = b.evidence(6.0, exit_code=1, output=ETERM_LINE, output_at=4.3)
    f = only(check_socket_safety(ev))
    assert (f.oracle, f.verdict) == ("shutdown.output", NON_STRICT)
    assert f.observed.startswith("ZMQ ETERM")
    assert "while shutting down after the master's quit (t=4.000s)" in f.observed


def test_the_same_crash_before_the_quit_is_failed() -> None:
    b = _quit_session(4.0)
    f = only(check_socket_safety(b.evidence(6.0, exit_code=1, output=ETERM_LINE, output_at=3.9)))
    assert (f.oracle, f.verdict) == ("socket.output", FAILED)


def test_output_after_the_harness_began_stopping_the_worker_is_only_reported() -> None:
    b = registered(0.5, 3.0)
    ev = b.evidence(3.0, exit_code=143, killed_by_harness=True, teardown_at=b.t0 + 3.0, output=ETERM_LINE, output_at=3.1)
    f = only(check_socket_safety(ev))
    assert (f.oracle, f.verdict) == ("teardown.output", INFORMATIONAL)
    assert "after the harness began stopping the worker (SIGTERM at t=3.000s): not judged" in f.observed


def test_a_case_that_signals_the_worker_makes_its_output_a_shutdown() -> None:
    b = registered(0.5, 3.0)
    b.note(2.0, f"{SHUTDOWN_NOTE}SIGTERM sent by the case")
    f = only(check_socket_safety(b.evidence(3.0, exit_code=0, output=ETERM_LINE, output_at=2.5)))
    assert (f.oracle, f.verdict) == ("shutdown.output", NON_STRICT)
    assert "while shutting down after SIGTERM sent by the case" in f.observed


def test_a_stack_dump_the_harness_asked_for_is_not_judged() -> None:
    b = registered(0.5, 3.0)
    b.fault(2.0, window_note("stack-dump", "start"))
    b.fault(2.8, window_note("stack-dump", "end"))
    dump = "Full thread dump OpenJDK\n\tat org.zeromq.ZMQ$Socket.recv(ZMQ.java:1)\nSIGQUIT: quit\npanic: not really"
    assert check_socket_safety(b.evidence(3.0, exit_code=0, output=dump, output_at=2.5)) == []


def test_death_by_signal_is_judged_by_when_it_happened() -> None:
    during = check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=-int(signal.SIGSEGV)))
    assert [(f.oracle, f.verdict) for f in during] == [("socket.signal", FAILED)]
    after_quit = check_socket_safety(_quit_session(4.0).evidence(6.0, exit_code=-int(signal.SIGSEGV)))
    assert [(f.oracle, f.verdict) for f in after_quit] == [("shutdown.signal", NON_STRICT)]
    torn_down = check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=-int(signal.SIGABRT), killed_by_harness=True))
    assert [(f.oracle, f.verdict) for f in torn_down] == [("teardown.signal", INFORMATIONAL)]


def test_a_worker_that_needed_sigkill_is_a_finding_of_its_own() -> None:
    b = registered(0.5, 3.0)
    ev = b.evidence(3.0, exit_code=-int(signal.SIGKILL), killed_by_harness=True, needed_sigkill=True, teardown_at=b.t0 + 3.0)
    f = only(check_socket_safety(ev))
    assert (f.oracle, f.verdict) == ("teardown.sigkill", INFORMATIONAL)
    assert "killed with SIGKILL (SIGTERM at t=3.000s)" in f.observed


def test_output_that_was_not_kept_is_said() -> None:
    ev = registered(0.5, 3.0).evidence(3.0, exit_code=0, output_not_judged="the worker printed 9 lines")
    f = only(check_socket_safety(ev))
    assert (f.oracle, f.verdict, f.observed) == ("output.not-judged", INFORMATIONAL, "the worker printed 9 lines")


def test_a_healthy_workers_output_is_clean() -> None:
    output = LOCUST_OUTPUT + "\nReceived reconnect message from master. Resetting RPC connection.\nassertion: fine\n"
    assert check_socket_safety(registered(0.5, 3.0).evidence(3.0, exit_code=0, output=output)) == []


def test_undecodable_frame_is_failed_with_its_size() -> None:
    b = registered(0.5, 3.0)
    b.recv_frames(1.7, [b"\xc1" + b"\x00" * 15])
    f = only(check_socket_safety(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("socket.frames", FAILED)
    assert "[codec.not-msgpack]" in f.observed
    assert f.observed.endswith("(1 frame(s), 16 bytes)")
    assert f.at == pytest.approx(1.7)


def test_multi_frame_message_is_failed() -> None:
    heartbeat = encode_parts("heartbeat", {"state": "ready", "current_cpu_usage": 0.0}, NODE)
    b = registered(0.5, 3.0)
    b.recv_frames(1.2, [b"", heartbeat])  # a REQ-style empty delimiter before the payload
    f = only(check_socket_safety(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("socket.frames", FAILED)
    assert "[framing.frames]" in f.observed
    assert f"(2 frame(s), {len(heartbeat)} bytes)" in f.observed


@pytest.mark.parametrize(
    ("frame", "rule"),
    [
        (encode_parts("heartbeat", {"state": "ready", "current_cpu_usage": 0.0}, NODE) + b"\x00", "codec.trailing-bytes"),
        (encode_parts("heartbeat", {"state": "ready", "current_cpu_usage": 0.0}, NODE)[:-3], "codec.not-msgpack"),
        (b"\x92\xa9heartbeat\xc0", "codec.arity"),
        (encode_parts(b"heartbeat", None, NODE), "codec.type-field"),
        (b"", "codec.empty"),
    ],
)
def test_garbled_frames_are_failed(frame: bytes, rule: str) -> None:
    b = registered(0.5, 3.0)
    b.recv_frames(2.2, [frame])
    f = only(check_socket_safety(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("socket.frames", FAILED)
    assert f"[{rule}]" in f.observed


def test_node_id_that_differs_from_the_identity_is_failed() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.1, M.HEARTBEAT, {"state": "ready", "current_cpu_usage": 0.0, "current_memory_usage": 0}, node_id="w_2")
    f = only(check_socket_safety(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("socket.frames", FAILED)
    assert "[envelope.node-id]" in f.observed and "'w_2'" in f.observed


def test_schema_problems_are_not_frame_problems() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.1, M.HEARTBEAT, {"state": "ready"})  # no cpu: the schema oracle's business
    b.recv(1.2, "my_custom", {"x": 1})
    assert check_socket_safety(b.evidence(3.0)) == []


def test_only_the_first_bad_frame_is_reported() -> None:
    b = registered(0.5, 3.0)
    b.recv_frames(1.0, [b"\xc1"])
    b.recv_frames(2.0, [b"\xc1\xc1"])
    assert len(check_socket_safety(b.evidence(3.0))) == 1


# --------------------------------------------------------------------------------------------
# check_schema
# --------------------------------------------------------------------------------------------


def test_schema_error_is_failed() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.3, M.HEARTBEAT, {"state": "ready", "current_memory_usage": 0})  # the master reads cpu with []
    f = only(check_schema(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("schema.heartbeat", FAILED)
    assert f.expected == "heartbeat.data['current_cpu_usage'] as a present key"
    assert f.observed == "no such key"
    assert f.at == pytest.approx(1.3)


def test_schema_keeps_every_violated_rule() -> None:
    """Three fields broken in two messages: three findings, one per rule and field (no "and 2 more")."""
    b = registered(0.5, 3.0)
    b.recv(1.3, M.HEARTBEAT, {"state": "stopped", "current_cpu_usage": "high", "current_memory_usage": 0})
    b.recv(1.4, M.EXCEPTION, {"msg": "boom"})
    findings = check_schema(b.evidence(3.0))
    assert [(f.oracle, f.verdict) for f in findings] == [("schema.heartbeat", FAILED)] * 2 + [("schema.exception", FAILED)]
    assert "'stopped'" in findings[0].observed and "'high'" in findings[1].observed
    assert not any("more)" in f.observed for f in findings)


def test_schema_counts_the_messages_that_broke_one_rule() -> None:
    b = registered(0.5, 3.0)
    for t in (1.1, 1.2, 1.3):
        b.recv(t, M.HEARTBEAT, {"state": "stopped", "current_cpu_usage": 1.0, "current_memory_usage": 0})
    f = only(check_schema(b.evidence(3.0)))
    assert f.observed.endswith("(3 messages, the first shown)") and f.at == pytest.approx(1.1)


def test_schema_deviation_is_informational() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.3, M.HEARTBEAT, {"state": "ready", "current_cpu_usage": 0.0})  # memory is read with .get()
    f = only(check_schema(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("schema.deviation.heartbeat", INFORMATIONAL)
    assert f.expected == "heartbeat.data['current_memory_usage'] as a present key"


def test_custom_message_type_is_informational() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.5, "demo_to_master", {"echo": 1})
    f = only(check_schema(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("schema.deviation.unknown", INFORMATIONAL)
    assert "'demo_to_master'" in f.observed


def test_master_only_type_from_a_worker_is_failed() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.5, M.SPAWN, {"timestamp": 1.0})
    f = only(check_schema(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("schema.direction", FAILED)
    assert "'spawn'" in f.observed


def test_spawning_complete_with_a_wrong_user_count_is_informational() -> None:
    b = registered(0.5, 3.0)
    b.spawn(1.0, {USER: 2})
    b.recv(1.1, M.SPAWNING_COMPLETE, {"user_classes_count": {USER: 2}, "user_count": 3})
    f = only(check_schema(b.evidence(3.0)))
    assert (f.oracle, f.verdict) == ("schema.deviation.spawning_complete", INFORMATIONAL)
    assert f.observed == "3"


def test_schema_error_and_deviation_are_both_reported() -> None:
    b = registered(0.5, 3.0)
    b.recv(1.1, M.STATS, {"stats": []})  # missing required keys
    b.recv(1.2, "custom", None)
    findings = check_schema(b.evidence(3.0))
    assert [(f.oracle, f.verdict) for f in findings] == [
        *[("schema.stats", FAILED)] * 3,  # stats_total, errors, user_classes_count: each its own finding
        ("schema.deviation.stats", INFORMATIONAL),  # user_count: the 2.47 master never reads it
        ("schema.deviation.unknown", INFORMATIONAL),
    ]


def test_schema_ignores_undecodable_frames() -> None:
    b = registered(0.5, 3.0)
    b.recv_frames(1.1, [b"\xc1"])
    assert check_schema(b.evidence(3.0)) == []


# --------------------------------------------------------------------------------------------
# check_protocol_order
# --------------------------------------------------------------------------------------------


def test_a_first_message_the_master_ignores_is_informational() -> None:
    """A heartbeat before client_ready: the real master ignores it from a worker it does not know yet."""
    b = TraceBuilder()
    b.heartbeat(0.2)
    b.recv(0.3, M.CLIENT_READY, VERSION)
    b.ack(0.31)
    f = only(check_protocol_order(b.evidence(2.0)))
    assert (f.oracle, f.verdict) == ("order.first-ignored", INFORMATIONAL)
    assert f.observed == "heartbeat first"
    assert f.at == pytest.approx(0.2)


def test_a_first_message_the_master_acts_on_is_failed() -> None:
    """spawning from a worker the master does not know: the 2.47 master asks it to quit."""
    b = TraceBuilder()
    b.recv(0.2, M.SPAWNING)
    b.recv(0.3, M.CLIENT_READY, VERSION)
    f = only(check_protocol_order(b.evidence(2.0)))
    assert (f.oracle, f.verdict, f.observed) == ("order.first", FAILED, "spawning first")


def test_first_message_judged_after_undecodable_frames() -> None:
    b = TraceBuilder()
    b.recv_frames(0.1, [b"\xc1"])  # the frames oracle's business
    b.recv(0.2, M.CLIENT_READY, VERSION)
    assert check_protocol_order(b.evidence(2.0)) == []


def test_client_ready_with_int_minus_one_first_is_fine() -> None:
    b = TraceBuilder()
    b.recv(0.0, M.CLIENT_READY, -1)  # boomer / locust4j
    b.ack(0.01)
    b.heartbeats(0.5, 3.0)
    assert check_protocol_order(b.evidence(3.0)) == []


def test_spawning_complete_with_other_counts_is_failed() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 3})
    b.recv(1.01, M.SPAWNING)
    b.complete(1.1, {USER: 2})
    f = only(check_protocol_order(b.evidence(5.0)))
    assert (f.oracle, f.verdict) == ("order.spawn-counts", FAILED)
    assert f.expected == f"spawning_complete counts equal to the spawn's {{'{USER}': 3}}"
    assert f.observed == f"{{'{USER}': 2}}"
    assert f.at == pytest.approx(1.1)


def test_spawn_counts_compare_absent_classes_as_zero() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2, "OtherUser": 0})
    b.complete(1.1, {USER: 2})
    assert check_protocol_order(b.evidence(5.0)) == []


def test_a_stale_spawn_in_between_does_not_confuse_the_counts() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2}, timestamp=WALL + 1.0)
    b.spawn(1.02, {USER: 4}, timestamp=WALL - 10.0)  # older: a conformant worker discards it
    b.recv(1.03, M.SPAWNING)
    b.complete(1.1, {USER: 2})
    b.recv(1.5, M.SPAWNING)  # Locust answers the stale one with 'spawning' only (§3.4)
    assert check_protocol_order(b.evidence(5.0)) == []


def test_a_stale_spawn_after_completion_does_not_confuse_the_counts() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2})
    b.complete(1.1, {USER: 2})
    b.spawn(2.0, {USER: 4}, timestamp=WALL - 10.0)
    b.recv(2.01, M.SPAWNING)
    b.spawn(3.0, {USER: 3})
    b.complete(3.1, {USER: 3})
    assert check_protocol_order(b.evidence(6.0)) == []


def test_applying_a_stale_spawn_is_failed() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2})
    b.complete(1.1, {USER: 2})
    b.spawn(2.0, {USER: 4}, timestamp=WALL - 10.0)
    b.complete(2.1, {USER: 4})
    f = only(check_protocol_order(b.evidence(5.0)))
    assert (f.oracle, f.verdict, f.observed) == ("order.spawn-counts", FAILED, f"{{'{USER}': 4}}")
    assert f"{{'{USER}': 2}}" in f.expected  # judged against the last valid spawn


def test_applying_an_equal_timestamp_spawn_is_failed() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2}, timestamp=WALL)
    b.complete(1.1, {USER: 2})
    b.spawn(2.0, {USER: 3}, timestamp=WALL)  # equal: Locust discards it (timestamp <= last)
    b.complete(2.1, {USER: 3})
    f = only(check_protocol_order(b.evidence(5.0)))
    assert (f.oracle, f.verdict) == ("order.spawn-counts", FAILED)


def test_a_completion_crossing_a_newer_spawn_is_tolerated() -> None:
    """Five spawns 10 ms apart (spawn/06): answers for earlier ones may cross later spawns on the wire."""
    b = registered()  # no heartbeats: the state check stays out of it
    for k in range(5):
        b.spawn(1.0 + 0.01 * k, {USER: k + 1})
    b.complete(1.025, {USER: 2})  # crossed spawns 3 and 4
    b.complete(1.06, {USER: 5})
    assert check_protocol_order(b.evidence(5.0)) == []


def test_old_counts_long_after_a_newer_spawn_are_failed() -> None:
    """Completing the older spawn of a burst is legal, but the newer one must then be answered too."""
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 1})
    b.spawn(1.01, {USER: 2})
    b.complete(2.5, {USER: 1})  # 1.49 s after the newer spawn: it was not applied
    assert check_protocol_order(b.evidence(6.0)) == []
    f = only(check_replies(b.evidence(6.0)))
    assert (f.oracle, f.verdict, f.at) == ("progress.spawn", FAILED, pytest.approx(1.01))


def test_one_completion_settles_alike_spawns_a_stop_apart() -> None:
    """Found by the state machine: spawn 0, stop, spawn 0 again; the one spawning_complete answers the newer spawn."""
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 0})
    b.send(1.0, M.STOP)
    b.recv(1.01, M.CLIENT_STOPPED)
    b.spawn(1.25, {USER: 0})
    b.recv(1.26, M.SPAWNING)
    b.complete(1.35, {USER: 0})
    assert check_replies(b.evidence(9.0)) == []
    assert check_protocol_order(b.evidence(9.0)) == []


def test_repeating_an_answered_spawns_counts_for_a_new_spawn_is_failed() -> None:
    b = registered()  # no heartbeats: the state check stays out of it
    b.spawn(1.0, {USER: 2})
    b.complete(1.05, {USER: 2})
    b.spawn(5.0, {USER: 5})
    b.recv(5.01, M.SPAWNING)
    b.complete(5.05, {USER: 2})  # the only answer to the second spawn, and it is wrong
    assert [(f.oracle, f.verdict) for f in check_protocol_order(b.evidence(9.0))] == [("order.spawn-counts", FAILED)]


def test_heartbeat_spawning_well_after_spawning_complete_is_informational() -> None:
    """The real master treats spawning and running alike (both active): only its UI says spawning."""
    b = registered(0.5, 2.0, t0=0.0)  # ready at 0.5, 1.5
    b.spawn(1.9, {USER: 2})
    b.recv(1.91, M.SPAWNING)
    b.complete(2.0, {USER: 2})
    b.heartbeat(2.5, "spawning")  # within one interval: may have crossed spawning_complete
    b.heartbeat(3.5, "spawning")  # 1.5 s later: stuck
    f = only(check_protocol_order(b.evidence(4.0)))
    assert (f.oracle, f.verdict) == ("order.state-spawning", INFORMATIONAL)
    assert f.expected == "heartbeats reporting 'running' after spawning_complete"
    assert f.observed == "state 'spawning' 1.500 s later"
    assert f.at == pytest.approx(3.5)


def test_heartbeat_crossing_spawning_complete_within_an_interval_is_tolerated() -> None:
    b = registered(0.5, 2.0)
    b.spawn(1.9, {USER: 2})
    b.recv(1.91, M.SPAWNING)
    b.complete(2.0, {USER: 2})
    b.heartbeat(2.9, "spawning")
    b.heartbeats(3.9, 6.0, "running")
    assert check_protocol_order(b.evidence(6.0)) == []


def test_heartbeat_not_ready_after_the_post_stop_client_ready_is_failed() -> None:
    b = registered(0.5, 2.0)
    b.spawn(1.9, {USER: 2})
    b.complete(2.0, {USER: 2})
    b.heartbeats(2.5, 5.0, "running")
    b.send(4.9, M.STOP)
    b.recv(4.95, M.CLIENT_STOPPED)
    b.recv(4.96, M.CLIENT_READY, VERSION)
    b.heartbeats(5.5, 8.0, "running")  # never went back to ready
    f = only(check_protocol_order(b.evidence(8.0)))
    assert (f.oracle, f.verdict) == ("order.state", FAILED)
    assert f.expected == "heartbeats reporting 'ready' after client_ready"
    assert f.observed == "state 'running' 1.540 s later"


def test_heartbeats_say_running_during_the_stop_timeout_sleep() -> None:
    """Locust keeps reporting 'running' between client_stopped and client_ready (§3.5)."""
    b = registered(0.5, 2.0)
    b.spawn(1.9, {USER: 2})
    b.complete(2.0, {USER: 2})
    b.send(4.0, M.STOP)
    b.recv(4.05, M.CLIENT_STOPPED)
    b.heartbeats(2.5, 7.0, "running")  # stop_timeout 2 s: still 'running' until client_ready
    b.recv(6.1, M.CLIENT_READY, VERSION)
    b.heartbeats(7.5, 10.0, "ready")
    ev = b.evidence(10.0)
    assert check_protocol_order(ev) == []
    assert check_replies(ev) == []


def test_a_spawn_in_flight_excuses_a_spawning_heartbeat() -> None:
    b = registered(0.5, 2.0)
    b.spawn(1.9, {USER: 2})
    b.complete(2.0, {USER: 2})
    b.heartbeat(2.5, "running")
    b.spawn(3.3, {USER: 50})  # the worker had not yet said 'spawning' when this heartbeat left
    b.heartbeat(3.5, "spawning")
    b.recv(3.6, M.SPAWNING)
    b.complete(4.4, {USER: 50})
    b.heartbeats(5.5, 8.0, "running")
    assert check_protocol_order(b.evidence(8.0)) == []


# --------------------------------------------------------------------------------------------
# check_replies
# --------------------------------------------------------------------------------------------


def running(until: float, spawn_at: float = 1.8) -> TraceBuilder:
    """A worker registered, then running 2 users from ``spawn_at`` (its heartbeats say so) until ``until``."""
    b = registered(0.5, spawn_at)
    b.spawn(spawn_at, {USER: 2})
    b.complete(spawn_at + 0.1, {USER: 2})
    b.heartbeats(spawn_at + 0.5, until, "running")
    return b


def test_stop_without_client_stopped_is_failed() -> None:
    b = running(12.0)
    b.send(3.0, M.STOP)
    f = only(check_replies(b.evidence(12.0)))
    assert (f.oracle, f.verdict) == ("progress.stop", FAILED)
    assert f.expected == "client_stopped within 4.00 s of stop"
    assert f.observed == "no answer"
    assert f.at == pytest.approx(3.0)


def test_a_stop_left_unanswered_by_a_ready_worker_is_informational() -> None:
    """The real master's stop counts a ready worker as stopped: nothing waits for its client_stopped."""
    b = registered(0.5, 12.0)
    b.send(3.0, M.STOP)
    f = only(check_replies(b.evidence(12.0)))
    assert (f.oracle, f.verdict) == ("stop.when-ready", INFORMATIONAL)
    assert "the worker was ready" in f.observed


def test_a_spawn_in_flight_makes_the_worker_busy_for_a_stop() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.8, {USER: 1})  # sent after the last heartbeat said ready: the worker is spawning when the stop comes
    b.complete(2.9, {USER: 1})
    b.send(3.0, M.STOP)
    assert only(check_replies(b.evidence(12.0))).oracle == "progress.stop"


def test_client_stopped_after_the_deadline_is_failed() -> None:
    b = running(12.0)
    b.send(3.0, M.STOP)
    b.recv(7.5, M.CLIENT_STOPPED)
    assert only(check_replies(b.evidence(12.0))).oracle == "progress.stop"


def test_client_stopped_within_the_deadline_is_fine() -> None:
    b = registered(0.5, 12.0)
    b.send(3.0, M.STOP)
    b.recv(6.9, M.CLIENT_STOPPED)
    assert check_replies(b.evidence(12.0)) == []


def test_spawn_without_spawning_complete_is_failed() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 3})
    b.recv(2.01, M.SPAWNING)
    f = only(check_replies(b.evidence(12.0)))
    assert (f.oracle, f.verdict) == ("progress.spawn", FAILED)
    assert f.expected == "spawning_complete within 4.00 s of spawn"
    assert f.at == pytest.approx(2.0)


def test_the_answer_to_quit_is_left_to_the_exit_oracle() -> None:
    b = registered(0.5, 12.0)
    b.send(3.0, M.QUIT)
    assert check_replies(b.evidence(12.0)) == []


def test_reply_deadline_scales_with_the_interval() -> None:
    timing = LOCUST_TIMING.compressed(0.25)
    b = registered(hb_start=None)
    b.heartbeats(0.1, 3.0, every=0.25)
    b.send(0.5, M.STOP)
    b.recv(1.6, M.CLIENT_STOPPED)  # 1.1 s > 1.0 s
    f = only(check_replies(b.evidence(3.0, timing)))
    assert f.expected == "client_stopped within 1.00 s of stop"


def test_spawn_superseded_quickly_by_another_spawn_is_not_a_failure() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 1})
    b.spawn(2.5, {USER: 2})  # replaces the first before it was answered
    b.complete(2.6, {USER: 2})
    assert check_replies(b.evidence(12.0)) == []


def test_spawn_superseded_by_a_stop_is_not_a_failure() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 100})
    b.send(2.5, M.STOP)
    b.recv(2.7, M.CLIENT_STOPPED)
    assert check_replies(b.evidence(12.0)) == []


def test_stop_superseded_by_a_quit_needs_no_client_stopped() -> None:
    b = registered(0.5, 12.0)
    b.send(2.0, M.STOP)
    b.send(2.0, M.QUIT)  # the master quits before the worker could answer the stop
    b.recv(2.2, M.QUIT)
    assert check_replies(b.evidence(12.0)) == []


def test_stop_superseded_by_the_workers_own_quit_needs_no_client_stopped() -> None:
    b = registered(0.5, 12.0)
    b.send(2.0, M.STOP)
    b.recv(2.1, M.QUIT)  # e.g. a SIGTERM while stopping: the master deletes the worker
    assert check_replies(b.evidence(12.0)) == []


def test_stop_not_superseded_by_a_spawn_must_be_answered() -> None:
    b = running(12.0, spawn_at=1.0)
    b.send(2.0, M.STOP)
    b.spawn(2.5, {USER: 1})
    b.complete(2.6, {USER: 1})
    assert [f.oracle for f in check_replies(b.evidence(12.0))] == ["progress.stop"]


def test_the_superseding_spawn_itself_must_be_answered() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 1})
    b.spawn(2.5, {USER: 2})
    f = only(check_replies(b.evidence(12.0)))
    assert (f.oracle, f.at) == ("progress.spawn", pytest.approx(2.5))


def test_a_stale_spawn_does_not_supersede_an_unanswered_one() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 2}, timestamp=WALL + 2.0)
    b.spawn(2.01, {USER: 2}, timestamp=WALL + 2.0)  # the same spawn delivered twice (a duplicate fault)
    b.recv(2.02, M.SPAWNING)
    b.recv(2.03, M.SPAWNING)
    assert [(f.oracle, f.verdict) for f in check_replies(b.evidence(12.0))] == [("progress.spawn", FAILED)]


def test_a_stale_spawn_needs_no_spawning_complete() -> None:
    b = registered(0.5, 12.0)
    b.spawn(2.0, {USER: 2})
    b.complete(2.1, {USER: 2})
    b.spawn(3.0, {USER: 4}, timestamp=WALL - 10.0)
    b.recv(3.01, M.SPAWNING)
    assert check_replies(b.evidence(12.0)) == []


def test_a_spawn_too_close_to_the_end_is_not_judged() -> None:
    b = running(12.0)
    b.spawn(8.5, {USER: 3})  # only 3.5 s watched of a 4 s deadline
    b.send(8.6, M.STOP)
    assert check_replies(b.evidence(12.0)) == []
    assert only(check_replies(b.evidence(12.7))).oracle == "progress.stop"  # now the stop's deadline has passed


def test_an_ask_inside_an_exempt_window_is_not_judged() -> None:
    b = registered(0.5, 12.0)
    b.send(3.0, M.STOP)
    assert check_replies(b.evidence(12.0, exempt=[(5.0, 6.0, "master down")])) == []


def test_one_finding_per_kind_of_ask() -> None:
    b = running(20.0, spawn_at=1.0)
    b.send(2.0, M.STOP)
    b.send(8.0, M.STOP)
    b.spawn(14.0, {USER: 1})
    assert sorted(f.oracle for f in check_replies(b.evidence(20.0))) == ["progress.spawn", "progress.stop"]


# --------------------------------------------------------------------------------------------
# check_stats
# --------------------------------------------------------------------------------------------


def stats_evidence(*reports: dict[str, Any]) -> Evidence:
    b = registered(0.5, 10.0)
    for k, data in enumerate(reports):
        b.stats(0.1 + 3 * k, data)
    return b.evidence(10.0)


def test_consistent_reports_are_clean() -> None:
    ev = stats_evidence(
        report(),
        report(entry(n=7, none=2, failures=3), entry("/b", 1), users=4),
        report(entry(n=0, failures=1), users=4),  # a failure-only entry
    )
    assert check_stats(ev) == []
    assert check_schema(ev) == []


def per_second(counts: dict[int, int]) -> dict[str, Any]:
    """A one-entry report whose requests fall in the given wall-clock seconds (offsets from WALL)."""
    e = entry(n=sum(counts.values()))
    e["num_reqs_per_sec"] = {int(WALL) + k: v for k, v in counts.items()}
    total = total_of([e])
    total["num_reqs_per_sec"] = dict(e["num_reqs_per_sec"])
    return report(e, users=1, total=total)


def test_delta_reports_may_share_only_the_second_a_report_was_taken_in() -> None:
    ev = stats_evidence(per_second({0: 3, 1: 2}), per_second({1: 1, 2: 4, 3: 1}), per_second({3: 2, 4: 5}))
    assert check_stats_deltas(ev) == []


def test_cumulative_reports_are_failed_with_the_repeated_seconds() -> None:
    ev = stats_evidence(per_second({0: 3, 1: 2}), per_second({0: 3, 1: 4, 2: 1}), per_second({0: 3, 1: 4, 2: 5, 3: 1}))
    f = only(check_stats_deltas(ev))
    assert (f.oracle, f.verdict) == ("stats.deltas", FAILED)
    assert f.observed.startswith(f"the report at t=6.100s repeats 2 earlier seconds with their full counts (second {int(WALL)}")
    assert f.at == pytest.approx(6.1)


def test_a_late_request_stamped_with_an_earlier_second_is_not_cumulative() -> None:
    """A user thread read the clock in second 1, the report was taken in second 2, the request was logged after it."""
    ev = stats_evidence(per_second({0: 3, 1: 2, 2: 1}), per_second({1: 1, 2: 4, 3: 2}), per_second({3: 2, 4: 5}))
    assert check_stats_deltas(ev) == []


def test_one_repeated_second_alone_is_not_enough() -> None:
    ev = stats_evidence(per_second({0: 1, 1: 1}), per_second({0: 1, 1: 2, 2: 1}))
    assert check_stats_deltas(ev) == []


def test_evidence_index_keeps_trace_order_and_follows_new_records() -> None:
    b = registered(0.5, 3.0)
    b.stats(1.2, report())
    ev = b.evidence(5.0)
    both = ev.received(M.HEARTBEAT, M.STATS)
    assert [r.seq for r in both] == sorted(r.seq for r in both) and {r.type for r in both} == {M.HEARTBEAT, M.STATS}
    assert ev.received() == [r for r in ev.records if r.kind is Kind.RECV and r.message is not None]
    ev.received(M.HEARTBEAT).clear()  # a copy: the index cannot be damaged by a caller
    assert len(ev.received(M.HEARTBEAT)) == 3
    ev.records.append(ev.received(M.HEARTBEAT)[0])
    assert len(ev.received(M.HEARTBEAT)) == 4, "records appended later are seen"


def test_num_reqs_per_sec_not_summing_to_num_requests_is_failed() -> None:
    bad = entry(n=5)
    bad["num_reqs_per_sec"] = {int(WALL): 3, int(WALL) + 1: 1}
    f = only(check_stats(stats_evidence(report(), report(bad, users=1))))
    assert (f.oracle, f.verdict) == ("stats.integrity", FAILED)
    assert f.observed == "/ConformanceUser: num_reqs_per_sec sums to 4, num_requests is 5"
    assert f.at == pytest.approx(3.1)


def test_response_times_not_matching_timed_requests_is_failed() -> None:
    bad = entry(n=5, none=1)
    bad["response_times"] = {42: 2, 120: 1}
    f = only(check_stats(stats_evidence(report(bad, users=1))))
    assert (f.oracle, f.verdict) == ("stats.integrity", FAILED)
    assert f.observed == "/ConformanceUser: response_times holds 3 samples for 4 timed requests"


def test_negative_user_count_is_failed() -> None:
    data = report(users=0)
    data["user_count"] = -1
    f = only(check_stats(stats_evidence(data)))
    assert (f.oracle, f.verdict) == ("stats.integrity", FAILED)
    assert f.observed == f"negative user counts: user_count=-1, user_classes_count={{'{USER}': 0}}"


def test_negative_class_count_is_failed() -> None:
    data = report(users=0)
    data["user_classes_count"] = {USER: -2}
    f = only(check_stats(stats_evidence(data)))
    assert "user_classes_count={'ConformanceUser': -2}" in f.observed


def test_negative_request_counts_are_failed() -> None:
    bad = entry(n=2)
    bad["num_failures"] = -1
    f = only(check_stats(stats_evidence(report(bad, users=1))))
    assert f.observed == "/ConformanceUser: negative counts (num_requests=2, num_failures=-1)"


def test_stats_total_disagreeing_with_the_entries_is_failed() -> None:
    entries = (entry(n=3), entry("/b", 2))
    total = total_of([entry(n=7)])  # consistent in itself, but 7 != 3 + 2
    f = only(check_stats(stats_evidence(report(*entries, users=2, total=total))))
    assert (f.oracle, f.verdict) == ("stats.integrity", FAILED)
    assert f.observed == "stats_total counts 7 requests, the entries 5"


def test_inconsistent_stats_total_itself_is_failed() -> None:
    total = total_of([entry(n=3)])
    total["num_reqs_per_sec"] = {int(WALL): 2}
    f = only(check_stats(stats_evidence(report(entry(n=3), users=1, total=total))))
    assert f.observed == "Aggregated: num_reqs_per_sec sums to 2, num_requests is 3"


def test_stats_total_with_requests_but_no_entries_is_failed() -> None:
    f = only(check_stats(stats_evidence(report(users=1, total=total_of([entry(n=5)])))))
    assert (f.oracle, f.verdict) == ("stats.integrity", FAILED)


def test_only_the_first_bad_report_is_reported() -> None:
    bad = entry(n=5)
    bad["num_reqs_per_sec"] = {}
    assert len(check_stats(stats_evidence(report(bad, users=1), report(bad, users=1)))) == 1


def test_mistyped_reports_are_left_to_the_schema_oracle() -> None:
    ev = stats_evidence({"stats": "nope"}, ["not", "a", "map"], report(entry(n=1), total={"name": "Aggregated"}))
    assert check_stats(ev) == []
    assert check_schema(ev)[0].verdict is FAILED


# --------------------------------------------------------------------------------------------
# check_final_stats_on_quit
# --------------------------------------------------------------------------------------------


def test_quit_without_a_final_report_is_non_strict() -> None:
    b = registered(0.5, 10.0)
    b.stats(9.0, report())  # before the master's quit: does not count
    b.send(10.0, M.QUIT)
    b.recv(10.05, M.QUIT)
    f = only(check_final_stats_on_quit(b.evidence(12.0)))
    assert (f.oracle, f.verdict) == ("stats.final", NON_STRICT)
    assert f.at == pytest.approx(10.05)
    assert "lost" in f.observed


def test_final_report_between_the_quits_is_fine() -> None:
    b = registered(0.5, 10.0)
    b.send(10.0, M.QUIT)
    b.stats(10.02, report(entry(n=1)))
    b.recv(10.05, M.QUIT)
    assert check_final_stats_on_quit(b.evidence(12.0)) == []


def test_final_report_not_owed_when_the_worker_quit_first() -> None:
    b = registered(0.5, 10.0)
    b.recv(9.8, M.QUIT)  # SIGTERM
    b.send(10.0, M.QUIT)
    assert check_final_stats_on_quit(b.evidence(12.0)) == []


def test_final_report_not_judged_without_quits() -> None:
    assert check_final_stats_on_quit(registered(0.5, 10.0).evidence(10.0)) == []
    b = registered(0.5, 10.0)
    b.send(9.0, M.QUIT)  # the worker never answers: shutdown.quit's business
    assert check_final_stats_on_quit(b.evidence(12.0)) == []


# --------------------------------------------------------------------------------------------
# check_exit_after_quit
# --------------------------------------------------------------------------------------------


def test_master_quit_without_worker_quit_is_informational() -> None:
    """The real master does not wait for the worker's quit: it has already left."""
    b = registered(0.5, 10.0)
    b.send(5.0, M.QUIT)
    f = only(check_exit_after_quit(b.evidence(12.0, exit_code=0), within=1.5))
    assert (f.oracle, f.verdict) == ("shutdown.quit", INFORMATIONAL)
    assert f.observed == "none"
    assert f.at == pytest.approx(5.0)


def test_still_running_after_quit_is_failed() -> None:
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    b.recv(5.1, M.QUIT)
    f = only(check_exit_after_quit(b.evidence(12.0, exit_code=None), within=1.5))
    assert (f.oracle, f.verdict) == ("shutdown.exit", FAILED)
    assert f.expected == "the process exits within 1.50 s of quit"
    assert "still running" in f.observed


def test_killed_by_the_harness_after_quit_is_failed() -> None:
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    b.recv(5.1, M.QUIT)
    ev = b.evidence(12.0, exit_code=-int(signal.SIGTERM), killed_by_harness=True)
    assert only(check_exit_after_quit(ev, within=1.5)).oracle == "shutdown.exit"


def test_neither_quit_nor_exit() -> None:
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    findings = check_exit_after_quit(b.evidence(12.0), within=1.5)
    assert [(f.oracle, f.verdict) for f in findings] == [("shutdown.quit", INFORMATIONAL), ("shutdown.exit", FAILED)]


def test_no_quit_sent_owes_no_exit() -> None:
    ev = registered(0.5, 5.0).evidence(5.0, exit_code=-int(signal.SIGTERM), killed_by_harness=True)
    assert check_exit_after_quit(ev, within=1.5) == []


def test_quit_answered_and_exited_by_itself() -> None:
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    b.recv(5.1, M.QUIT)
    assert check_exit_after_quit(b.evidence(12.0, exit_code=0), within=1.5) == []


# --------------------------------------------------------------------------------------------
# judge
# --------------------------------------------------------------------------------------------


def test_judge_turns_a_crashing_oracle_into_unknown_and_goes_on() -> None:
    def check_broken(ev: Evidence) -> list[Finding]:
        raise ValueError("boom")

    b = running(5.5, spawn_at=0.6)
    b.send(1.0, M.STOP)
    findings = judge(b.evidence(5.5), (check_broken, check_replies))
    assert [(f.oracle, f.verdict) for f in findings] == [("harness.check_broken", UNKNOWN), ("progress.stop", FAILED)]
    assert findings[0].observed == "it crashed: ValueError('boom')"
    assert worst(f.verdict for f in findings) is FAILED


def test_judge_unknown_is_never_a_pass() -> None:
    def check_broken(ev: Evidence) -> list[Finding]:
        raise KeyError("user_classes_count")

    ev, _ = conformant_session()
    findings = judge(ev, (*DEFAULT_ORACLES, check_broken))
    assert worst(f.verdict for f in findings) is UNKNOWN


def test_judge_with_no_oracles_finds_nothing() -> None:
    ev, _ = conformant_session()
    assert judge(ev, ()) == []


def test_judge_collects_every_oracles_findings_in_order() -> None:
    """One buggy worker, several defects: each oracle reports its own."""
    b = TraceBuilder()
    b.heartbeat(0.0)  # before client_ready
    b.recv(0.1, M.CLIENT_READY, VERSION)
    b.ack(0.11)
    b.heartbeats(1.0, 3.0)
    b.recv(3.1, M.HEARTBEAT, {"state": "ready"})
    b.spawn(4.0, {USER: 2})
    b.complete(4.1, {USER: 1})
    b.send(5.0, M.QUIT)
    b.recv(5.2, M.QUIT)
    ev = b.evidence(12.0, exit_code=-int(signal.SIGSEGV), output="Segmentation fault (core dumped)", output_at=3.5)
    findings = judge(ev)
    assert [(f.oracle, f.verdict) for f in findings] == [
        ("heartbeat.gap", NON_STRICT),
        ("shutdown.signal", NON_STRICT),  # it died after the master's quit
        ("socket.output", FAILED),  # but the segfault was printed before it
        ("schema.heartbeat", FAILED),  # no current_cpu_usage
        ("schema.deviation.heartbeat", INFORMATIONAL),  # no current_memory_usage
        ("order.first-ignored", INFORMATIONAL),  # a heartbeat before client_ready: the master ignores it
        ("order.spawn-counts", FAILED),
        ("stats.final", NON_STRICT),
    ]
    # The beat at 3.1 lacks current_cpu_usage, which the master cannot read: the gap runs from 2.0 to the master's quit
    # at 5.0, when the worker began shutting down.
    assert by_oracle(findings, "heartbeat.gap").observed == "a 3.000 s gap"
    assert worst(f.verdict for f in findings) is FAILED


def test_final_stats_are_checked_whether_or_not_the_worker_says_quit() -> None:
    """A worker that exits on quit without saying quit loses its last report as surely: named all the same."""
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    f = only(check_final_stats_on_quit(b.evidence(12.0, exit_code=0, exited_at=5.3)))
    assert (f.oracle, f.verdict) == ("stats.final", NON_STRICT)
    assert "exited (without a quit) without a final report" in f.observed and f.at == pytest.approx(5.3)
    b.stats(5.1, report())
    assert check_final_stats_on_quit(b.evidence(12.0, exit_code=0, exited_at=5.3)) == []


def test_final_stats_are_not_owed_by_a_worker_that_never_ended() -> None:
    b = registered(0.5, 5.0)
    b.send(5.0, M.QUIT)
    assert check_final_stats_on_quit(b.evidence(12.0, exit_code=None)) == []  # the exit oracle says so


def test_a_gap_while_the_harness_itself_stalled_is_unknown_not_failed() -> None:
    """The fake master timestamps heartbeats when its socket thread reads them: if that thread ran late during the
    gap, the gap may be the harness's own doing."""
    b = registered(0.5, 2.6)
    b.heartbeats(8.5, 12.0)  # a 6 s silence from 2.5 to 8.5
    stalled = b.evidence(12.0, stalls=[(3.0, 7.9)])
    (f,) = judge_run(stalled)
    assert (f.oracle, f.verdict) == ("harness.overloaded", UNKNOWN)
    assert "heartbeat.missing FAILED" in f.observed and "-j 1" in f.observed
    assert [g.oracle for g in judge_run(b.evidence(12.0))] == ["heartbeat.missing"]  # on time: the worker's doing
    elsewhere = b.evidence(12.0, stalls=[(10.0, 11.0)])  # a stall outside the gap changes nothing
    assert [g.oracle for g in judge_run(elsewhere)] == ["heartbeat.missing"]


def test_findings_that_are_not_about_timing_stand_through_a_stall() -> None:
    b = running(12.0)
    b.recv(3.0, M.HEARTBEAT, {"state": "ready"})  # no current_cpu_usage: the master cannot read it
    findings = judge_run(b.evidence(12.0, stalls=[(2.0, 4.0)]))
    assert ("schema.heartbeat", FAILED) in [(f.oracle, f.verdict) for f in findings]


def test_overload_tolerance_is_a_quarter_interval() -> None:
    assert overload_tolerance(LOCUST_TIMING) == 0.25
    assert overload_tolerance(LOCUST_TIMING.compressed(0.1)) == 0.05

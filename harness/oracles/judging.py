"""A whole run's judgement: every oracle family on one ``Evidence``, a crashing oracle made UNKNOWN, and timing
findings made while the harness itself ran late made UNKNOWN (``harness.overloaded``)."""

from __future__ import annotations

from collections.abc import Iterable

from harness.consequences import judged
from harness.oracles.evidence import Evidence, Oracle
from harness.oracles.liveness import NON_STRICT_GAP, check_heartbeat_liveness, heartbeat_gaps
from harness.oracles.master_crash import check_master_crash
from harness.oracles.order import check_protocol_order
from harness.oracles.progress import check_replies
from harness.oracles.schema import check_schema
from harness.oracles.shutdown import check_exit_after_quit
from harness.oracles.socket_safety import check_socket_safety
from harness.oracles.stats import check_final_stats_on_quit, check_stats, check_stats_deltas
from harness.protocol.timing import Timing
from harness.trace import Kind
from harness.verdicts import Finding, Verdict

DEFAULT_ORACLES: tuple[Oracle, ...] = (
    check_heartbeat_liveness,
    check_socket_safety,
    check_schema,
    check_protocol_order,
    check_replies,
    check_stats,
    check_stats_deltas,
    check_final_stats_on_quit,
    check_master_crash,
)


EXIT_AFTER_QUIT_INTERVALS = 6.0  # a worker told to quit exits by itself within this many heartbeat intervals


def judge_run(ev: Evidence, extra: Iterable[Oracle] = ()) -> list[Finding]:
    """A whole run's judgement (a case, a repro, a simulation): every default oracle, ``extra``, and the exit
    check after a quit; timing findings made while the harness itself stalled are not the worker's (``overloaded``)."""
    within = EXIT_AFTER_QUIT_INTERVALS * ev.timing.heartbeat_interval
    return overloaded([*judge(ev, (*DEFAULT_ORACLES, *extra)), *check_exit_after_quit(ev, within=within)], ev)


def overload_tolerance(timing: Timing) -> float:
    """How late the harness may run before its own timing can no longer be trusted: a quarter of the interval (a
    heartbeat gap has half an interval of margin before NON-STRICT), at least 50 ms."""
    return max(0.05, 0.25 * timing.heartbeat_interval)


TIMING_ORACLES = ("heartbeat.", "progress")


def overloaded(findings: list[Finding], ev: Evidence) -> list[Finding]:
    """A heartbeat or progress finding that falls in a moment when the harness itself was later than the tolerance
    (``Evidence.stalls``) is never FAILED: it becomes UNKNOWN, harness.overloaded (rerun with fewer cases at once)."""
    if not ev.stalls:
        return findings
    windows = [(a, a + length) for a, length in heartbeat_gaps(ev) if length > NON_STRICT_GAP * ev.timing.heartbeat_interval]
    windows += [(r.t - ev.timing.missing_after_max, r.t) for r in ev.records if r.kind is Kind.LIVENESS and r.note == "missing"]
    out = []
    for f in findings:
        suspect = f.oracle.startswith(TIMING_ORACLES) and f.verdict in (Verdict.FAILED, Verdict.NON_STRICT)
        spans = windows if f.oracle.startswith("heartbeat.") else [(ev.t0, ev.end)]  # an answer could come any time
        hit = [(a, b) for a, b in ev.stalls if any(a < w1 and w0 < b for w0, w1 in spans)] if suspect else []
        if not hit:
            out.append(f)
            continue
        worst = max(b - a for a, b in hit)
        out.append(
            judged(
                "harness.overloaded",
                "a harness on time while it judged the worker's timing",
                f"the harness itself ran {worst:.3f} s late at t={ev.rel(hit[0][1]):.3f}s (more than the "
                f"{overload_tolerance(ev.timing):.3f} s it tolerates), so this cannot be told from the worker's doing: "
                f"{f.oracle} {f.verdict.value}: {f.observed}. Rerun with fewer cases at once (-j 1)",
                f.at,
            )
        )
    return out


def judge(ev: Evidence, oracles: Iterable[Oracle] = DEFAULT_ORACLES) -> list[Finding]:
    """Run every oracle; an oracle that crashes is a harness failure (UNKNOWN), never a pass."""
    findings: list[Finding] = []
    for oracle in oracles:
        try:
            findings += oracle(ev)
        except Exception as exc:  # a bug in our oracle must not read as a pass
            findings.append(judged(f"harness.{oracle.__name__}", "the oracle to run", f"it crashed: {exc!r}"))
    return findings

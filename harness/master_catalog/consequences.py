"""The master role's verdicts, graded by consequence: what each kind of master finding does to the master's workers.

The worker catalog's table (``harness.consequences``) grades a worker by what it does to a real master; this one
grades a master by what it does to real workers. No master case picks a verdict: a case names what it saw (an
oracle, what was expected, what was observed) and ``graded`` looks the oracle up here. A variant of a finding that
weighs differently has a name of its own (``master.missing.never`` against ``master.missing-window``). The table is
printed on docs/master-verdicts.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.verdicts import Finding, Verdict


@dataclass(frozen=True)
class MasterRule:
    """One kind of master finding: its verdict and what it does to the workers, said concretely."""

    oracle: str
    verdict: Verdict
    effect: str


FAILED, NON_STRICT, UNIMPLEMENTED, INFO, UNKNOWN, SCENARIO = (
    Verdict.FAILED,
    Verdict.NON_STRICT,
    Verdict.UNIMPLEMENTED,
    Verdict.INFORMATIONAL,
    Verdict.UNKNOWN,
    Verdict.SCENARIO_ERROR,
)
_RULES = (
    # joining
    MasterRule("master.registers", FAILED, "no worker can join this master: it neither acks client_ready nor takes it"),
    MasterRule("master.registers.some", FAILED, "part of the workers never join: the test runs on fewer machines than started"),
    MasterRule("master.registers.stranger", INFO, "the master counts a worker that never sent client_ready"),
    MasterRule("master.reregister", FAILED, "a restarted worker cannot rejoin: Locust workers 2.10+ wait for the ack, then exit"),
    MasterRule(
        "master.ack",
        UNIMPLEMENTED,
        "Locust workers 2.10+ wait for the ack: they re-send client_ready every 5 s and exit after about 305 s (15 s "
        "in 2.10.0); workers of the master's own release (before 2.10) never wait for one",
    ),
    MasterRule("master.ack.missing", FAILED, "a worker the master took without an ack waits for one, re-sends, and exits"),
    MasterRule("master.ack.late", NON_STRICT, "the worker starts late: its heartbeats and users wait for the ack"),
    MasterRule("master.ack-index.nil", INFO, "workers keep worker_index -1: locustfiles that shard by index see -1"),
    MasterRule("master.ack-index.malformed", FAILED, "a Locust worker fails on the ack's data"),
    MasterRule("master.ack-index.shared", FAILED, "two workers share an index: locustfiles that shard by it do work twice"),
    # heartbeats both ways
    MasterRule(
        "master.heartbeat-reply",
        UNIMPLEMENTED,
        "Locust workers 2.19+ only time out on a master that replied once: on this one they never notice it died",
    ),
    MasterRule(
        "master.heartbeat-reply.lost", NON_STRICT, "a 2.19+ worker quits after 60 s without a reply; a few lost are harmless"
    ),
    MasterRule("master.heartbeat-reply.late", NON_STRICT, "workers hear from their master late; they give up only after 60 s"),
    MasterRule(
        "master.missing.never",
        FAILED,
        "a dead worker keeps its share of users: the test runs short of its user count and nobody is told",
    ),
    MasterRule("master.missing.false", FAILED, "a live worker is marked missing: its users are taken away from a healthy worker"),
    MasterRule("master.missing-window.early", FAILED, "workers with an ordinary late heartbeat (under 3 s) are dropped"),
    MasterRule("master.missing-window", NON_STRICT, "missing workers are noticed at another moment than Locust's rule says"),
    # reading on
    MasterRule(
        "master.listener-alive",
        FAILED,
        "the master's client_listener is dead or deaf: it reads nothing more from any worker, so no worker can join, "
        "heartbeats go unread and every worker is soon marked missing, while the master process runs on",
    ),
    MasterRule(
        "master.stall",
        NON_STRICT,
        "every worker's messages wait that long, and those queued on the master's old socket are lost (a client_ready "
        "among them must be sent again); the missing rule's ticks pause too, so nobody goes missing",
    ),
    MasterRule("master.reconnect", INFO, "the sender keeps its connection; a master before 2.10 resets everyone's instead"),
    MasterRule("master.reconnect-target", FAILED, "an innocent worker drops its connection (Locust 2.10-2.13.0)"),
    # a load test
    MasterRule("master.dispatch", FAILED, "the test runs with another number of users than the user asked for"),
    MasterRule("master.dispatch.uneven", FAILED, "one worker does the others' work: its machine limits the load"),
    MasterRule("master.spawn-schema", FAILED, "a Locust worker cannot read the spawn: its users never start"),
    MasterRule(
        "master.spawn-schema.deviation",
        INFO,
        "a spawn Locust's workers of the master's own release read, and later ones may not (see the explanation)",
    ),
    MasterRule("master.spawn-order", FAILED, "a worker discards a later spawn as stale: it runs an old user count"),
    MasterRule("master.redispatch", FAILED, "the test runs short of its user count after a worker leaves, and nobody is told"),
    MasterRule("master.quit", FAILED, "workers keep running users after the test ended"),
    MasterRule("master.quit.unprompted", FAILED, "workers leave a test they were never asked to leave"),
    MasterRule("master.stats-merge", FAILED, "the master's report differs from what its workers measured"),
    MasterRule("master.stats-merge.no-report", FAILED, "the run's report is lost"),
    # not the master's doing
    MasterRule(
        "harness.master-start", UNKNOWN, "the master never listened: nothing could be judged (its command, or its install)"
    ),
    MasterRule("harness.launch", UNKNOWN, "the master command did not start: nothing could be judged"),
    MasterRule("harness.interrupted", UNKNOWN, "the run was stopped before the case ended: nothing could be judged"),
    MasterRule("harness.case", UNKNOWN, "the harness failed: nothing can be said about the master"),
    MasterRule("harness.reap", UNKNOWN, "the harness could not end the master's processes"),
    MasterRule("harness.scenario", SCENARIO, "the case asked for something this master cannot do"),
)
RULES: dict[str, MasterRule] = {rule.oracle: rule for rule in _RULES}


def graded(oracle: str, expected: str, observed: str, at: float | None = None) -> Finding:
    """A master finding graded by the table; an oracle it lacks is a KeyError (a harness bug, caught as UNKNOWN)."""
    rule = RULES[oracle]
    return Finding(oracle, rule.verdict, expected, observed, at, rule.effect)


def table_markdown() -> list[str]:
    """The table as Markdown rows, worst first."""
    order = [FAILED, UNKNOWN, SCENARIO, UNIMPLEMENTED, NON_STRICT, INFO]
    lines = ["| finding (oracle) | verdict | what it does to the workers |", "|---|---|---|"]
    for rule in sorted(_RULES, key=lambda r: (order.index(r.verdict), r.oracle)):
        lines.append(f"| `{rule.oracle}` | {rule.verdict.value} | {rule.effect} |")
    return lines

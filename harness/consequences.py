"""Verdicts graded by consequence: what each kind of finding does to a real Locust 2.47 master, and so its verdict.

A conformance verdict is only useful if the worker's maintainer agrees with it. So no oracle and no case picks a
verdict: they name what they saw (an oracle name, what was expected, what was observed) and ``judged`` looks the
oracle up here. FAILED means the real master misbehaves or gives up on the worker, or what the user asked for or
sees is lost or wrong; lesser consequences get lesser verdicts. docs/verdicts.md is this table, generated
(``locust-conformance verdicts --markdown``), and a test keeps the two in step.

Robustness cases (malformed frames, floods: input the stock master never sends) are graded by the same table; the
reports show them apart (``ROBUSTNESS``) so a reader can filter conformance from robustness.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from harness.verdicts import MEANINGS, Finding, Verdict, rank


class Consequence(enum.Enum):
    """What a finding does on a real master, worst first; each implies one verdict."""

    MASTER = ("the real master misbehaves or gives up on the worker", Verdict.FAILED)
    DATA = ("what the user asked for or sees is lost or wrong (stats, users, load)", Verdict.FAILED)
    HARNESS = ("nothing can be said: the harness could not judge", Verdict.UNKNOWN)
    SCRIPT = ("nothing can be said: the scenario or script asked for something impossible", Verdict.SCENARIO_ERROR)
    OPTIONAL = ("an optional behaviour is missing", Verdict.UNIMPLEMENTED)
    MARGIN = ("the real master copes, without margin (or the tail of a run is lost)", Verdict.NON_STRICT)
    UI = ("only what the master's UI shows is off", Verdict.INFORMATIONAL)
    NONE = ("the real master does not mind: Locust's own worker merely behaves differently", Verdict.INFORMATIONAL)

    @property
    def text(self) -> str:
        return self.value[0]

    @property
    def verdict(self) -> Verdict:
        return self.value[1]


@dataclass(frozen=True)
class Rule:
    """One kind of finding: its consequence on a real 2.47 master, said concretely."""

    oracle: str
    consequence: Consequence
    why: str

    @property
    def verdict(self) -> Verdict:
        return self.consequence.verdict


MASTER, DATA, HARNESS, SCRIPT, OPTIONAL, MARGIN, UI, NONE = Consequence
_RULES = (
    # liveness
    Rule("heartbeat.missing", MASTER, "the master marks the worker missing: no more users for it, its users re-dispatched"),
    Rule("heartbeat.gap", MARGIN, "the master still counts it alive, but a little more delay gets it marked missing"),
    # answers the master waits for
    Rule("progress", MASTER, "a step the master waits for never came (spawning_complete, client_stopped, client_ready ...)"),
    Rule("progress.spawn", DATA, "the users the master dispatched never run: the load is not what the user asked for"),
    Rule(
        "progress.stop", MASTER, "the master's stop waits for client_stopped (stop_timeout + 60 s) and never re-uses the worker"
    ),
    Rule("stop.when-ready", NONE, "the master's stop counts a ready worker as stopped: nothing waits for the answer"),
    # starting up
    Rule("startup", MASTER, "the master never registers the worker: it gets no users"),
    Rule("connection.zmtp-handshake", MASTER, "the master never hears the worker: it is not speaking ZeroMQ to it"),
    Rule("connection.none", HARNESS, "the worker never connected: its command probably does not pass {host}/{port} on"),
    Rule("launch", HARNESS, "the worker command did not start: nothing could be judged"),
    # crashes and garbled frames
    Rule("socket.signal", MASTER, "the worker died (abort/segfault): the master marks it missing"),
    Rule("socket.output", MASTER, "the worker's runtime or socket broke while working (crash, ZeroMQ error)"),
    Rule("socket.traceback", MASTER, "an uncaught exception ended part of the worker while working"),
    Rule("codec", MASTER, "a frame the master cannot decode: its listener dies on it or asks for a reconnect (spec 7.2)"),
    Rule("framing", MASTER, "a message in several frames: the master's listener dies on it (spec 7.2)"),
    Rule("envelope", MASTER, "an envelope the master misroutes (node_id and identity differ: replies go nowhere)"),
    Rule("socket.frames", MASTER, "a garbled frame: the master's listener dies on it or asks for a reconnect (spec 7.2)"),
    Rule("shutdown.signal", MARGIN, "the master was served (quit, final stats); the worker then crashed while shutting down"),
    Rule("shutdown.output", MARGIN, "the master was served; the worker's own shutdown crashes (a race of its threads)"),
    Rule("teardown.signal", NONE, "seen only while the harness was stopping the worker: reported, not judged"),
    Rule("teardown.output", NONE, "printed while the harness was stopping the worker: reported, not judged"),
    Rule("teardown.sigkill", NONE, "the worker ignored SIGTERM: an orchestrator kills it; the master sees it go missing"),
    Rule("output.task-traceback", NONE, "a user task raised: Locust logs it and the user carries on"),
    Rule("output.not-judged", NONE, "the worker printed more than the harness keeps: the middle of its output was not read"),
    # what the master reads
    Rule("schema", MASTER, "the master cannot read it: its listener dies, or it misreads the field (spec 7.2)"),
    Rule("schema.deviation", NONE, "the master reads it; Locust's own worker never sends it so"),
    Rule("order.first", MASTER, "the master acts on it for an unknown worker (asks it to quit, or its listener dies)"),
    Rule("order.first-ignored", NONE, "the master ignores it from a worker it does not know yet; client_ready comes next"),
    Rule("order.spawn-counts", DATA, "the master books the wrong user counts: dispatch and the user count are off"),
    Rule("order.state", MASTER, "the master takes the worker for idle while it runs users (a stop is taken as done early)"),
    Rule("order.state-spawning", UI, "the master treats spawning and running alike (both active); its UI says spawning"),
    # stats
    Rule("stats.integrity", DATA, "the master merges counts that contradict each other: the user's statistics are wrong"),
    Rule("stats.deltas", DATA, "the master adds the reports up: cumulative reports count requests several times"),
    Rule("stats.merge", DATA, "Locust's own merge code rejects or miscounts the reports: the user's statistics are wrong"),
    Rule("stats.final", MARGIN, "the requests made since the last report are lost when the worker quits"),
    Rule("stats.cadence", UI, "the master's numbers update later or not at all while idle; nothing is lost"),
    Rule("stats.requests", NONE, "every report counts 0 requests: the worker's users make none (or are not counted)"),
    Rule("stats.merge-unchecked", NONE, "Locust is not installed here: its merge code could not be run"),
    # ending
    Rule("shutdown.exit", DATA, "the worker goes on after the master's quit: its users keep loading the system under test"),
    Rule("shutdown.quit", NONE, "the master does not wait for the worker's quit: it has already left"),
    Rule("shutdown.sigterm", MARGIN, "the master learns of the worker's end only when it goes missing, 4-5 s later"),
    Rule("shutdown.sigterm-exit", MARGIN, "a worker asked to stop by its OS runs on until it is killed"),
    Rule("shutdown.unprompted", MASTER, "the worker leaves a master that is still there: the master loses it"),
    Rule(
        "shutdown.master-silence", OPTIONAL, "the worker never gives up on a silent master (optional: Locust's does after 60 s)"
    ),
    Rule("shutdown.master-silence-early", MARGIN, "the worker gives up on a master that is only slow, before its timeout"),
    Rule("shutdown.master-death", OPTIONAL, "the worker goes on loading with no master (optional to stop: Locust's does)"),
    # spawns
    Rule("spawn.stale", DATA, "an out-of-date spawn is applied: the worker runs another user count than the master asked"),
    Rule("spawn.stale-spawning", NONE, "no 'spawning' for a stale spawn (Locust sends one before its check)"),
    Rule("spawn.duplicate", NONE, "a duplicated spawn is applied twice (counts are absolute: the same users)"),
    # handshake and the rest
    Rule("handshake.early-heartbeat", NONE, "heartbeats before the ack: the master ignores them"),
    Rule(
        "master.crashed",
        MASTER,
        "the message kills the master's client_listener: it reads nothing more from any worker, and they all go missing",
    ),
    Rule(
        "handshake.ack-required",
        MASTER,
        "the worker waits for an ack its master never sends (before 2.10): no heartbeats, so the master marks it missing",
    ),
    Rule("handshake.duplicate-ack", NONE, "client_ready after a second ack: the master registers the worker again"),
    Rule("handshake.identity-format", UI, "the master groups workers by the part of the id before '_' (its UI)"),
    Rule("heartbeat.resources", UI, "the master's UI shows no memory for the worker"),
    Rule(
        "reconnect.identity-race",
        MASTER,
        "the worker reconnected while the master still held its old connection: the master's ROUTER (no handover) "
        "ignores the new one for good, the worker goes missing",
    ),
    Rule("reconnect.socket", MASTER, "the master found the connection broken and asked for a new one; the worker keeps it"),
    Rule("reconnect.re-register", NONE, "client_ready after a master restart (better than Locust's worker)"),
    Rule("stop.timeout", NONE, "client_ready sooner than stop_timeout after a stop"),
    Rule("storm.refused", NONE, "the worker read too slowly: the master's socket refused part of a flood"),
    Rule("harness", HARNESS, "the harness failed: nothing can be said about the worker"),
    # the proxy (locust-conformance proxy): what its own fault plan did, never the worker's doing
    Rule(
        "proxy.missing-by-fault",
        NONE,
        "the proxy's fault plan held the worker's heartbeats back, so the real master marks it missing: the plan's "
        "doing (this is how a user checks their master notices a silent worker)",
    ),
    # a script (run --script, master --script): the catalog's own case bugs are the harness's (harness.case)
    Rule("script", SCRIPT, "a bad step, a send before any worker connected: the script's author's to fix"),
    Rule("script.expectation", MASTER, "the worker did not do what the script, playing the master, waits for"),
)
RULES: dict[str, Rule] = {rule.oracle: rule for rule in _RULES}
# Categories of input the stock master never sends: their cases test robustness, not conformance.
ROBUSTNESS = frozenset({"malformed", "storms"})


def rule_for(oracle: str) -> Rule:
    """The rule of ``oracle``: its own entry, else its family's (``schema.heartbeat`` -> ``schema``)."""
    name = oracle
    while name:
        rule = RULES.get(name)
        if rule is not None:
            return rule
        name = name.rpartition(".")[0]
    raise KeyError(f"no consequence rule for the oracle {oracle!r} (harness.consequences.RULES)")


def judged(oracle: str, expected: str, observed: str, at: float | None = None, *, rule: str | None = None) -> Finding:
    """A finding graded by the consequence table (``rule``: another entry than the oracle's own, e.g. ``schema.deviation``)."""
    graded = rule_for(rule or oracle)
    return Finding(oracle, graded.verdict, expected, observed, at, graded.consequence.text + ": " + graded.why)


def verdicts_markdown() -> str:
    """docs/verdicts.md: the table, by consequence."""
    lines = [
        "# Verdicts, graded by consequence",
        "",
        "Generated by `locust-conformance verdicts --markdown` from `harness/consequences.py`; a test keeps this page",
        "in step with the code. Every finding of every oracle, case and script is graded here, by what it does to a real",
        "Locust 2.47 master: FAILED means the real master misbehaves or gives up on the worker, or what the user",
        "asked for or sees is lost or wrong. A finding's family (`schema` for `schema.heartbeat`) grades it unless",
        "it has an entry of its own. Cases of the categories "
        + ", ".join(f"`{c}`" for c in sorted(ROBUSTNESS))
        + " feed the worker input the stock master never sends: they are graded the same way and reported apart, as"
        ' robustness (a FAILED there reads "fails under input the stock master never sends").',
        "",
        "## The scale",
        "",
        "A case's verdict, and a script's (`run --script`, `master --script`), is the worst of its findings' verdicts",
        "(`harness.verdicts.worst`; with no finding it is OK). Worst first:",
        "",
        "| verdict | meaning |",
        "| --- | --- |",
        *(f"| {v.value} | {MEANINGS[v]} |" for v in sorted(Verdict, key=rank, reverse=True)),
        "",
        "FAILED outranks everything: evidence against the worker stands, whatever else went wrong in the run.",
        "SCENARIO-ERROR is the script author's verdict: the script asked for something impossible (a bad step, a send",
        "before any worker connected), which is neither a pass nor the worker's fault (exit code 3, as a usage error).",
        "It ranks above every passing verdict, since the run stopped short and what it judged is incomplete, and below",
        "UNKNOWN: a harness that failed cannot be trusted to say the script was wrong (a script error at run time can",
        "be an artefact of its fault), and its fault is the one the reader cannot fix by editing the script. A catalog",
        "case's own bug (`harness.case`) stays UNKNOWN: the catalog ships with the harness, so it is not the reader's.",
        "A script is graded by this table too: a step the worker does not meet is `script.expectation` (the finding",
        "named by the step's rule, e.g. `expect.client_ready`), a script error `script`, a harness failure `harness`;",
        "every error the fake master records in the trace (codec, framing, envelope, schema) is FAILED whatever the",
        "script did.",
        "",
        "## The table",
        "",
        "| consequence | verdict |",
        "| --- | --- |",
        *(f"| {c.text} | {c.verdict.value} |" for c in Consequence),
        "",
        "| finding (oracle) | verdict | consequence on a real master |",
        "| --- | --- | --- |",
    ]
    for consequence in Consequence:
        for rule in (r for r in _RULES if r.consequence is consequence):
            lines.append(f"| `{rule.oracle}` | {rule.verdict.value} | {rule.why} |")
    lines.append("")
    return "\n".join(lines)

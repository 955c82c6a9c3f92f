"""The numbered rules of the wire spec and of the version reference, and what checks each (docs/coverage.md).

Rules: ``shared/reference/locust-protocol.md`` section 7 (what a worker must do, what kills the master's listener,
what a fake master must do) and section 5.2 (the missing rule), and ``shared/reference/locust-versions.md``
section 12's knobs (what sets one master release apart). Each rule names the catalog cases and the oracles
(``harness.consequences``) or profile knobs that check it; a rule with none is listed as unchecked. A test keeps
every catalog case under at least one rule and the page in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.catalog import Case


@dataclass(frozen=True)
class SpecRule:
    """One numbered rule: where it is written, what it says, and what checks it."""

    id: str  # P7.1.3: locust-protocol.md section 7.1 item 3; V12.ack: locust-versions.md section 12, knob ack
    text: str
    cases: tuple[str, ...] = ()  # catalog case ids
    checks: tuple[str, ...] = ()  # oracles, profile knobs or tests that check it outside the catalog

    @property
    def checked(self) -> bool:
        return bool(self.cases or self.checks)


_R = SpecRule
UNIT = "tests/unit/test_master_profiles.py"  # the profile knobs' emulation, knob by knob
MASTERS = "tests/interop/test_master_catalog.py"  # master-run: the real masters and the fake master, from the other side
RULES: tuple[SpecRule, ...] = (
    # locust-protocol.md 7.1: a worker talking to a real 2.47 master must ...
    _R(
        "P7.1.1",
        "a DEALER whose identity is the node_id <hostname>_<hex>, one frame per message, the same node_id in every envelope",
        ("handshake/06-identity-format",),
        ("envelope", "framing", "socket.frames"),
    ),
    _R(
        "P7.1.2",
        "client_ready with a version string or -1, re-sent if no ack arrives within 5 s",
        ("handshake/01-first-message", "handshake/02-retry-until-ack"),
        ("order.first", "schema"),
    ),
    _R(
        "P7.1.3",
        "a heartbeat every <= 1 s with state in {ready, spawning, running} and a numeric current_cpu_usage",
        (
            "heartbeat/01-idle-cadence",
            "heartbeat/02-running-cadence",
            "heartbeat/03-no-master-replies",
            "heartbeat/06-resources-reported",
        ),
        ("heartbeat.missing", "heartbeat.gap", "order.state", "heartbeat.resources"),
    ),
    _R(
        "P7.1.4",
        "on spawn: spawning, the absolute counts applied (a stale timestamp ignored), spawning_complete; any parsed_options",
        (
            "spawn/01-basic",
            "spawn/02-scale-up-down",
            "spawn/03-stale-timestamp",
            "spawn/04-equal-timestamp",
            "spawn/05-zero-users",
            "spawn/06-rapid-sequence",
            "spawn/07-odd-parsed-options",
            "timing/02-reordered-spawns",
            "timing/03-duplicated-spawn",
            "storms/04-stale-spawn-flood",
        ),
        ("progress.spawn", "order.spawn-counts", "spawn.stale", "spawn.duplicate"),
    ),
    _R(
        "P7.1.5",
        "stats every 3 s with all five keys, int histogram keys, delta semantics; exception with msg and traceback",
        (
            "stats/01-cadence",
            "stats/02-integrity-running",
            "stats/03-mergeable-by-locust",
            "stats/04-user-count",
            "stats/06-deltas-not-cumulative",
        ),
        ("stats.integrity", "stats.deltas", "stats.merge", "stats.cadence"),
    ),
    _R(
        "P7.1.6",
        "on stop: users stopped, client_stopped, then client_ready again (after stop_timeout)",
        (
            "stop-quit/01-stop-then-ready",
            "stop-quit/02-stop-timeout-honoured",
            "stop-quit/03-stop-when-ready",
            "stop-quit/04-respawn-after-stop",
        ),
        ("progress.stop", "stop.timeout"),
    ),
    _R(
        "P7.1.7",
        "on quit: stop, final stats (optional), quit, exit; quit also when the worker shuts down on its own",
        (
            "stop-quit/05-quit-while-running",
            "stop-quit/06-quit-while-ready",
            "stop-quit/07-sigterm-sends-quit",
            "stats/05-final-on-quit",
        ),
        ("shutdown.exit", "shutdown.quit", "shutdown.sigterm", "stats.final"),
    ),
    _R(
        "P7.1.8",
        "ignore ack.index, master heartbeats, spawning_complete, update_user_class and unknown types; reconnect recreates "
        "the socket with the same id; a master silent over 60 s is gone (optional)",
        (
            "handshake/03-ack-without-index",
            "handshake/04-ack-other-index",
            "handshake/05-duplicate-ack",
            "heartbeat/04-delayed-replies",
            "heartbeat/05-dropped-replies",
            "spawn/08-master-notices",
            "malformed/05-unknown-type",
            "reconnect/01-reconnect-message",
            "reconnect/02-master-restart",
            "reconnect/03-master-silence-timeout",
            "reconnect/04-master-death",
            "reconnect/05-short-silence-tolerated",
            "storms/01-unknown-type-flood",
            "storms/02-heartbeat-flood",
        ),
        ("reconnect.socket", "reconnect.identity-race", "shutdown.master-silence", "shutdown.unprompted"),
    ),
    # 7.2: inputs that kill the real master's client_listener (a worker must never send them)
    _R(
        "P7.2.1",
        "never a non-msgpack payload, an empty frame, an extra frame or an array whose length is not 3",
        (),
        ("codec", "framing", "socket.frames"),
    ),
    _R("P7.2.2", "never client_ready with a truthy non-sliceable value other than -1", (), ("schema", "version_slice_check")),
    _R("P7.2.3", "never a heartbeat without state or current_cpu_usage", (), ("schema",)),
    _R("P7.2.4", "never spawning_complete without user_classes_count", (), ("schema",)),
    _R("P7.2.5", "never exception without msg or traceback", (), ("schema",)),
    _R("P7.2.6", "never locustfile without version", (), ("schema",)),
    # 7.3: a fake master for real Python workers (>= 2.19) must ... (what the fake master itself does)
    _R("P7.3.1", "a ROUTER that replies to frame 0", (), ("tests/interop/test_profile_traces.py",)),
    _R("P7.3.2", "ack every client_ready within 5 s with {index: n}", (), ("ack", "tests/unit/test_master_profiles.py")),
    _R("P7.3.3", "reply heartbeat (nil) to the heartbeats", (), ("heartbeat_reply", "tests/interop/test_profile_traces.py")),
    _R(
        "P7.3.4",
        "spawn with all five keys and a strictly increasing timestamp",
        (),
        ("parsed_options", "stop_timeout_float", "tests/interop/test_profile_traces.py"),
    ),
    _R("P7.3.5", "its own pacing: the worker spawns everything at once", ()),
    _R("P7.3.6", "optionally spawning_complete {user_count} after a ramp", (), ("spawning_complete_broadcast", UNIT)),
    _R(
        "P7.3.7",
        "expect stats, logs, exception; stop -> client_stopped, client_ready; quit -> final stats, quit",
        (),
        ("progress", "shutdown.quit"),
    ),
    # 5.2: the missing rule
    _R(
        "P5.2",
        "each tick: a worker whose counter is below 0 goes missing, else the counter drops; a heartbeat resets it to 3",
        ("heartbeat/01-idle-cadence", "timing/01-delayed-master", "timing/04-pause-reading"),
        ("heartbeat.missing", "tests/unit/test_timing.py", MASTERS, "tests/interop/test_proxy_real_master.py"),
    ),
    # robustness: what a worker survives (locust-protocol.md 7.2's inputs sent to a worker, 8.4's runs C and D)
    _R(
        "P8.4",
        "the worker survives undecodable frames, wrong types, oversized and multi-frame messages, floods",
        (
            "malformed/01-garbage",
            "malformed/02-truncated",
            "malformed/03-wrong-arity",
            "malformed/04-wrong-types",
            "malformed/06-empty",
            "malformed/07-extra-frames",
            "malformed/08-oversized",
            "malformed/09-bad-utf8",
            "malformed/10-bin-type",
            "malformed/11-spawn-missing-keys",
            "storms/03-mixed-flood",
        ),
        ("socket.output", "socket.traceback", "progress"),
    ),
    # locust-versions.md 12: the knobs that set the master releases apart (emulated by harness.protocol.profiles,
    # checked against the real masters by tests/interop/test_profile_traces.py and in the core by the unit tests)
    _R("V12.ack", "ack: none (< 2.10), nil (2.10.x), {index} (2.11+)", ("handshake/01-first-message",), ("ack", UNIT, MASTERS)),
    _R(
        "V12.heartbeat_reply",
        "a nil heartbeat reply for each heartbeat of a known worker (2.19+)",
        (),
        ("heartbeat_reply", UNIT, MASTERS),
    ),
    _R(
        "V12.spawn_schema",
        "spawn 2.0 schema, + parsed_options (2.2+)",
        ("spawn/07-odd-parsed-options",),
        ("parsed_options", UNIT),
    ),
    _R("V12.stop_timeout_type", "stop_timeout nil or int (<= 2.12), float (2.13+)", (), ("stop_timeout_float", UNIT)),
    _R(
        "V12.m2w_spawning_complete",
        "spawning_complete broadcast after each ramp (2.29+)",
        (),
        ("spawning_complete_broadcast", UNIT),
    ),
    _R(
        "V12.reconnect",
        "reconnect to a known worker on an undecodable frame (2.13.2+)",
        (),
        ("reconnect_on_bad_frame", UNIT, MASTERS),
    ),
    _R(
        "V12.node_id_source",
        "handlers use the identity (<= 2.11.0) or the payload node_id (2.11.1+)",
        (),
        ("node_id_from_payload", UNIT),
    ),
    _R(
        "V12.version_check",
        "falsy client_ready rejected (2.0); non-sliceable truthy data crashes (2.5+)",
        (),
        ("version_slice_check", UNIT, MASTERS),
    ),
    _R(
        "V12.quit_unknown_spawning",
        "quit to an unknown worker's spawning (2.15+; crash before)",
        (),
        ("unknown_spawning", UNIT, MASTERS),
    ),
    _R(
        "V12.quit_unknown_spawning_complete",
        "quit to an unknown worker's spawning_complete (2.47; crash before)",
        (),
        ("unknown_spawning_complete", UNIT, MASTERS),
    ),
    _R("V12.missing_delete", "missing workers deleted at -60 (2.8.4+; never before)", (), ("delete_missing", UNIT)),
    _R("V12.post_ramp_wait", "post-ramp wait 0.1 s (2.0-2.6), 1.0 s (2.7+) (a knob, but the fake master does not ramp)", ()),
    _R("V12.locustfile", "locustfile replies: none, v1 (2.23), v2 (2.31)", ()),
    _R("V12.update_user_class", "update_user_class (2.25+)", ("spawn/08-master-notices",)),
    _R("V12.logs_known", "logs known to the master (2.29+)", ()),
    _R("V12.msgpack_ext_hooks", "datetime and ObjectId maps decoded (2.20+)", ("spawn/07-odd-parsed-options",)),
    _R("V12.ipv6", "IPv6 socket option: off, on (2.20.1), has-ipv6 (2.28), dual-stack + resolve (2.32)", ()),
)


def uncovered_cases(cases: Sequence[Case]) -> list[str]:
    """Catalog cases no rule names (a case added without its rules)."""
    named = {c for rule in RULES for c in rule.cases}
    return [case.id for case in cases if case.id not in named]


def unknown_cases(cases: Sequence[Case]) -> list[str]:
    """Case ids the rules name that are not in the catalog."""
    known = {case.id for case in cases}
    return sorted({c for rule in RULES for c in rule.cases if c not in known})


def coverage_markdown(cases: Sequence[Case]) -> str:
    """docs/coverage.md: every rule, what checks it, the unchecked ones, and the share checked."""
    checked = [r for r in RULES if r.checked]
    share = 100 * len(checked) / len(RULES)
    lines = [
        "# Spec coverage",
        "",
        "Generated by `locust-conformance coverage --markdown`; a test keeps this page in step with the code and fails",
        "when a catalog case is added without the rules it checks (`harness/spec_rules.py`).",
        "",
        "Rules: `locust-protocol.md` section 7 (P7.1.n: what a worker must do; P7.2.n: what kills the real master's",
        "listener, so a worker must never send it; P7.3.n: what a fake master must do, i.e. our own), section 5.2 (the",
        "missing rule) and 8.4 (robustness), and `locust-versions.md` section 12 (V12.knob: what sets a master release",
        "apart, emulated by the master profiles). *Checks* are oracles (`locust-conformance verdicts`), profile knobs",
        "(`locust-conformance profiles`) or test files.",
        "",
        f"**{len(checked)} of {len(RULES)} rules checked ({share:.0f}%).** {len(cases)} catalog cases, each under a rule.",
        "",
        "| rule | says | cases | checks |",
        "|---|---|---|---|",
    ]
    for rule in RULES:
        cases_cell = ", ".join(f"`{c}`" for c in rule.cases) or "-"
        checks_cell = ", ".join(f"`{c}`" for c in rule.checks) or "-"
        lines.append(f"| {rule.id} | {rule.text} | {cases_cell} | {checks_cell} |")
    unchecked = [r for r in RULES if not r.checked]
    lines += ["", "## Not checked yet", ""]
    lines += [f"- {r.id}: {r.text}" for r in unchecked] or ["- none"]
    lines.append("")
    return "\n".join(lines)

"""Oracles: judgements over a case's recorded evidence (the wire trace and the worker process).

Each ``check_*`` is a pure function of an ``Evidence`` and returns ``Finding``s;
an empty list means nothing wrong was seen. They never raise for a bad worker.

One module per family, none importing another (an import-linter contract): ``liveness`` (heartbeats),
``socket_safety`` (crash signals, crash signs in the output, garbled frames), ``schema``, ``order`` (the protocol's
order and states), ``progress`` (spawns and stops answered in time), ``stats`` (integrity, deltas, the final report),
``shutdown`` (exit after quit) and ``master_crash`` (a message that kills the master's listener); ``connections``
reads the socket monitor's notes (the identity race a case names). They share ``evidence`` (what they judge) and
``spawns`` (which spawn a spawning_complete answers); ``judging`` runs them all. This package re-exports the public names of each.
"""

from harness.oracles.connections import Connection, IdentityRace, connections, identity_race
from harness.oracles.evidence import (
    DISRUPTIONS,
    SHUTDOWN_NOTE,
    UNREACHABLE,
    Evidence,
    Oracle,
    excused_windows,
    shutdown_began,
)
from harness.oracles.judging import (
    DEFAULT_ORACLES,
    EXIT_AFTER_QUIT_INTERVALS,
    TIMING_ORACLES,
    judge,
    judge_run,
    overload_tolerance,
    overloaded,
)
from harness.oracles.liveness import (
    HARNESS_JITTER,
    NON_STRICT_GAP,
    check_heartbeat_liveness,
    heartbeat_gaps,
    heartbeats_due_from,
)
from harness.oracles.order import ACTED_ON_WHEN_UNKNOWN, check_protocol_order
from harness.oracles.progress import REPLY_DEADLINE_INTERVALS, check_replies, worker_state_at
from harness.oracles.schema import check_schema
from harness.oracles.shutdown import check_exit_after_quit
from harness.oracles.socket_safety import CRASH_SIGNALS, Phase, check_output, check_socket_safety
from harness.oracles.stats import check_final_stats_on_quit, check_stats, check_stats_deltas

__all__ = [
    "ACTED_ON_WHEN_UNKNOWN",
    "CRASH_SIGNALS",
    "Connection",
    "DEFAULT_ORACLES",
    "DISRUPTIONS",
    "EXIT_AFTER_QUIT_INTERVALS",
    "HARNESS_JITTER",
    "NON_STRICT_GAP",
    "REPLY_DEADLINE_INTERVALS",
    "SHUTDOWN_NOTE",
    "TIMING_ORACLES",
    "UNREACHABLE",
    "Evidence",
    "IdentityRace",
    "Oracle",
    "Phase",
    "check_exit_after_quit",
    "check_final_stats_on_quit",
    "check_heartbeat_liveness",
    "check_output",
    "check_protocol_order",
    "check_replies",
    "check_schema",
    "check_socket_safety",
    "check_stats",
    "check_stats_deltas",
    "connections",
    "excused_windows",
    "heartbeat_gaps",
    "heartbeats_due_from",
    "identity_race",
    "judge",
    "judge_run",
    "overload_tolerance",
    "overloaded",
    "shutdown_began",
    "worker_state_at",
]

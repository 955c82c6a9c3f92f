"""Named defects: real bugs of third-party Locust workers, re-created on purpose in the reference worker.

Each is off unless ``python -m worker --defect NAME`` asks for it, and each is
one clearly marked deviation (``# DEFECT <name>:``) in ``worker.session`` (the
protocol-logic bugs) or a different runtime, ``worker.threaded_runtime`` (the
threading bugs). They exist so that the harness's oracles can be shown to catch
each bug class; the reference worker without ``--defect`` is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFECTS: dict[str, str] = {
    "shared-socket": "receiver, heartbeat, stats and user threads all use the one DEALER with no coordination "
    "(users send a message after every request): under load libzmq aborts, segfaults or stalls",
    "lock-across-recv": "one socket lock, held by the receiver while it blocks in recv() with no timeout: "
    "heartbeats wait for the master to send something, so after the ack they stop",
    "slow-recv-timeout": "one socket lock, held by the receiver through a receive timeout of one heartbeat interval: "
    "heartbeats are late by up to an interval (gaps ~2x the interval)",
    "stuck-spawning": "never sends spawning_complete: reports 'spawning' forever after a spawn",
    "no-final-stats": "on quit, sends quit without the final stats report",
    "ignores-reconnect": "logs a reconnect from the master but keeps the old socket (no new connection)",
    "overlapping-reconnect": "on reconnect, connects the new socket at once and closes the old one only 2 intervals "
    "later: the master's ROUTER still holds the identity, so it ignores the new connection for good",
    "no-master-timeout": "never quits when the master goes silent or dies",
    "accepts-stale-spawn": "applies a spawn whose timestamp is not newer than the last one (spawning_complete with its counts)",
    "wrong-counts": "spawning_complete reports one user more than asked for the first class (and in user_count)",
    "crash-on-unknown": "an unknown message type raises in the socket thread: traceback, heartbeats stop, exit 70",
    "no-ready-after-stop": "after stop, sends client_stopped but never client_ready",
    "no-exit-on-quit": "on quit, sends the final stats and quit but the process keeps running (until SIGTERM)",
    "stats-backwards": "stats with num_requests one less than the response_times counts, and a negative user_count",
    "late-heartbeats": "heartbeats every 1.7 intervals: gaps over 1.5x, yet never long enough to be marked missing",
    "silent-after-spawn": "no heartbeat for 6 intervals after each spawn: the real master marks it missing",
    "heartbeat-before-ack": "heartbeats start before the ack: the first message is a heartbeat, not client_ready",
    "deaf-after-garbage": "the receive loop dies on an undecodable frame (as Locust 2.47's own worker): heartbeats go on, "
    "nothing the master sends is handled any more",
    "cumulative-stats": "stats reports are never reset: each one repeats everything since start instead of a delta",
    "no-client-ready-retry": "client_ready is sent once and never retried: a lost ack leaves the worker waiting forever",
    "impatient-master-timeout": "gives up on the master after 2 intervals without a master heartbeat (Locust allows 60)",
    "silent-sigterm": "on SIGTERM exits at once without sending quit: the master only notices when it goes missing",
    "stale-heartbeat-state": "heartbeats always say 'ready', even while spawning or running",
}

# Bugs of the socket design rather than of the protocol logic: each needs its own runtime, so at most one.
THREADING_DEFECTS = ("shared-socket", "lock-across-recv", "slow-recv-timeout")


def threading_defect(defects: Iterable[str]) -> str | None:
    """The one threading defect among ``defects``, if any (ValueError if several)."""
    chosen = [name for name in THREADING_DEFECTS if name in set(defects)]
    if len(chosen) > 1:
        raise ValueError(f"at most one of {', '.join(THREADING_DEFECTS)} (got {', '.join(chosen)})")
    if chosen and "overlapping-reconnect" in set(defects):  # a runtime defect of the one-owner runtime only
        raise ValueError(f"overlapping-reconnect cannot be combined with {chosen[0]} (a different runtime)")
    return chosen[0] if chosen else None


def listing() -> str:
    """``name  description``, one defect a line, for ``--list-defects``."""
    width = max(map(len, DEFECTS))
    return "\n".join(f"{name:<{width}}  {text}" for name, text in DEFECTS.items())

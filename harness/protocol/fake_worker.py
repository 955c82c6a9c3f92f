"""A scripted fake worker's behaviour, sans-IO: what it sends, when, and what it makes of the master's messages.

The master catalog (harness.master_catalog) drives real masters with these. The core never reads a clock: every
call is given ``now`` (seconds on the caller's clock), and it returns the messages to send. It sends what a foreign
worker sends (``client_ready`` with data ``-1``, the version bypass every 2.x master accepts), heartbeats on a fixed
period from ``start`` (a master that never acks, before 2.10, still gets them, as Locust's workers of that time sent
them), and answers ``spawn`` with ``spawning`` and ``spawning_complete``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.protocol.messages import Message, MessageType

FOREIGN_VERSION = -1  # client_ready data of a non-Python worker: no version warning on any 2.x master
ENDPOINT = ("GET", "/fake-worker")  # the one request name fake workers report stats for


def heartbeat_data(state: str = "ready") -> dict[str, Any]:
    """A heartbeat payload every 2.x master reads (state, numeric CPU, memory)."""
    return {"state": state, "current_cpu_usage": 1.0, "current_memory_usage": 1_000_000}


def stats_entry(requests: int, failures: int, now: float, name: str = ENDPOINT[1], method: str = ENDPOINT[0]) -> dict[str, Any]:
    """A serialized ``StatsEntry`` (locust.stats) for ``requests`` requests of 10 ms each, all in second ``now``."""
    second = int(now)
    return {
        "name": name,
        "method": method,
        "last_request_timestamp": now if requests else None,
        "start_time": now,
        "num_requests": requests,
        "num_none_requests": 0,
        "num_failures": failures,
        "total_response_time": 10.0 * requests,
        "max_response_time": 10.0 if requests else 0.0,
        "min_response_time": 10.0 if requests else None,
        "total_content_length": 0,
        "response_times": {10: requests} if requests else {},
        "num_reqs_per_sec": {second: requests} if requests else {},
        "num_fail_per_sec": {second: failures} if failures else {},
    }


def stats_data(requests: int, failures: int, now: float, users: dict[str, int]) -> dict[str, Any]:
    """A ``stats`` payload reporting ``requests`` (``failures`` of them failed) since the previous report."""
    entry = stats_entry(requests, failures, now)
    total = stats_entry(requests, failures, now, name="Aggregated", method="")
    errors: dict[str, Any] = {}
    if failures:
        errors["fake-worker-error"] = {
            "name": ENDPOINT[1],
            "method": ENDPOINT[0],
            "error": "fake failure",
            "occurrences": failures,
            "first_seen": now,
            "last_seen": now,
        }
    return {
        "stats": [entry] if requests else [],
        "stats_total": total,
        "errors": errors,
        "user_classes_count": dict(users),
        "user_count": sum(users.values()),
    }


@dataclass
class FakeWorkerCore:
    """One fake worker. ``heartbeats`` off makes it silent (its socket stays open): the missing rule's input."""

    node_id: str
    heartbeat_interval: float = 1.0
    ready_data: Any = FOREIGN_VERSION
    heartbeats: bool = True
    answer_spawns: bool = True  # off: the users are taken (``assigned``) but spawning/spawning_complete never sent
    state: str = "ready"
    users: dict[str, int] = field(default_factory=dict)
    acks: list[tuple[float, Any]] = field(default_factory=list)  # (when, data) of each ack
    replies: list[float] = field(default_factory=list)  # when each master heartbeat came
    heartbeats_sent: list[float] = field(default_factory=list)
    spawns: list[tuple[float, Any]] = field(default_factory=list)
    quit_at: float | None = None
    reconnects: list[float] = field(default_factory=list)
    other: list[tuple[float, Message]] = field(default_factory=list)  # anything else the master sent
    _next_heartbeat: float | None = None

    def start(self, now: float) -> list[Message]:
        """``client_ready``; heartbeats from one period later."""
        self.heartbeat_from(now + self.heartbeat_interval)
        return [Message(MessageType.CLIENT_READY, self.ready_data, self.node_id)]

    def heartbeat_from(self, when: float) -> None:
        """Heartbeats from ``when`` on (without a client_ready: a worker the master never registered)."""
        self._next_heartbeat = when

    def next_due(self) -> float | None:
        """When ``due`` next has something to send (None: nothing scheduled)."""
        if not self.heartbeats or self.quit_at is not None:
            return None
        return self._next_heartbeat

    def due(self, now: float) -> list[Message]:
        """The heartbeat due by ``now`` (one, however late: a late worker does not catch up)."""
        due = self.next_due()
        if due is None or now < due:
            return []
        self.heartbeats_sent.append(now)
        # On time: the fixed schedule goes on. More than a period late: the next one a full period from now.
        self._next_heartbeat = (
            due + self.heartbeat_interval if now < due + self.heartbeat_interval else now + self.heartbeat_interval
        )
        return [Message(MessageType.HEARTBEAT, heartbeat_data(self.state), self.node_id)]

    def stop_heartbeats(self) -> None:
        self.heartbeats = False

    def receive(self, message: Message, now: float) -> list[Message]:
        """Record what the master sent; the replies a worker owes it."""
        kind = message.type
        if kind == MessageType.ACK:
            self.acks.append((now, message.data))
        elif kind == MessageType.HEARTBEAT:
            self.replies.append(now)
        elif kind == MessageType.SPAWN:
            self.spawns.append((now, message.data))
            replies = self._spawned(message.data)
            return replies if self.answer_spawns else []
        elif kind == MessageType.QUIT:
            self.quit_at = now
        elif kind == MessageType.RECONNECT:
            self.reconnects.append(now)
        else:
            self.other.append((now, message))
        return []

    def _spawned(self, data: Any) -> list[Message]:
        counts = data.get("user_classes_count") if isinstance(data, dict) else None
        if not isinstance(counts, dict):
            return []
        self.users = {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
        self.state = "running"
        done = {"user_classes_count": dict(self.users), "user_count": sum(self.users.values())}
        return [Message(MessageType.SPAWNING, None, self.node_id), Message(MessageType.SPAWNING_COMPLETE, done, self.node_id)]

    def stats(self, requests: int, failures: int, now: float) -> Message:
        """A stats report of ``requests`` new requests."""
        return Message(MessageType.STATS, stats_data(requests, failures, now, self.users), self.node_id)

    def assigned(self) -> int:
        """Users the master has this worker run now."""
        return sum(self.users.values())

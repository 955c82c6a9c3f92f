"""Request statistics in Locust's exact wire format (``locust/stats.py``), with delta reports.

User threads record; the socket thread takes a report, which resets what was
reported (Locust's ``get_stripped_report``). A lock guards the counters; no
socket is involved.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any


def bucket_response_time(response_time: float) -> int:
    """Locust's histogram key: ~2 significant digits (147 -> 150, 3432 -> 3400)."""
    if response_time < 100:
        return round(response_time)
    if response_time < 1000:
        return int(round(response_time, -1))
    if response_time < 10000:
        return int(round(response_time, -2))
    return int(round(response_time, -3))


@dataclass
class _Entry:
    name: str
    method: str
    start_time: float
    num_requests: int = 0
    num_none_requests: int = 0
    num_failures: int = 0
    total_response_time: float = 0
    max_response_time: float = 0
    min_response_time: float | None = None
    total_content_length: int = 0
    last_request_timestamp: float | None = None
    response_times: dict[int, int] = field(default_factory=dict)
    num_reqs_per_sec: dict[int, int] = field(default_factory=dict)
    num_fail_per_sec: dict[int, int] = field(default_factory=dict)

    def log(self, response_time: float, content_length: int, now: float) -> None:
        self.num_requests += 1
        second = int(now)
        self.num_reqs_per_sec[second] = self.num_reqs_per_sec.get(second, 0) + 1
        self.last_request_timestamp = now
        self.total_response_time += response_time
        self.min_response_time = response_time if self.min_response_time is None else min(self.min_response_time, response_time)
        self.max_response_time = max(self.max_response_time, response_time)
        bucket = bucket_response_time(response_time)
        self.response_times[bucket] = self.response_times.get(bucket, 0) + 1
        self.total_content_length += content_length

    def log_error(self, now: float) -> None:
        self.num_failures += 1
        second = int(now)
        self.num_fail_per_sec[second] = self.num_fail_per_sec.get(second, 0) + 1

    def serialize(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "last_request_timestamp": self.last_request_timestamp,
            "start_time": self.start_time,
            "num_requests": self.num_requests,
            "num_none_requests": self.num_none_requests,
            "num_failures": self.num_failures,
            "total_response_time": self.total_response_time,
            "max_response_time": self.max_response_time,
            "min_response_time": self.min_response_time,
            "total_content_length": self.total_content_length,
            "response_times": dict(self.response_times),
            "num_reqs_per_sec": dict(self.num_reqs_per_sec),
            "num_fail_per_sec": dict(self.num_fail_per_sec),
        }


def error_key(method: str, name: str, error: str) -> str:
    """Locust's ``StatsError.create_key``."""
    return hashlib.sha256(f"{method}.{name}.{error!r}".encode()).hexdigest()


class RequestStats:
    """Thread-safe request counters that report deltas in Locust's format."""

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._total = _Entry("Aggregated", "", now)
        self._errors: dict[str, dict[str, Any]] = {}
        self.requests_total = 0  # since start, never reset: what this worker really did
        self.failures_total = 0

    def _entry(self, method: str, name: str, now: float) -> _Entry:
        entry = self._entries.get((name, method))
        if entry is None:
            entry = self._entries[(name, method)] = _Entry(name, method, now)
        return entry

    def log_request(self, method: str, name: str, response_time: float, content_length: int, now: float) -> None:
        with self._lock:
            self._total.log(response_time, content_length, now)
            self._entry(method, name, now).log(response_time, content_length, now)
            self.requests_total += 1

    def log_error(self, method: str, name: str, error: str, now: float) -> None:
        with self._lock:
            self._total.log_error(now)
            self._entry(method, name, now).log_error(now)
            key = error_key(method, name, error)
            err = self._errors.setdefault(
                key, {"name": name, "method": method, "error": error, "occurrences": 0, "first_seen": now, "last_seen": now}
            )
            err["occurrences"] += 1
            err["last_seen"] = now
            self.failures_total += 1

    def take_report(self, now: float, *, reset: bool = True) -> dict[str, Any]:
        """``stats``, ``stats_total`` and ``errors`` since the last report; resets them (``reset=False``: a defect)."""
        with self._lock:
            entries, total, errors = self._entries, self._total, self._errors
            if reset:
                self._entries = {k: _Entry(e.name, e.method, now) for k, e in entries.items()}
                self._total = _Entry("Aggregated", "", now)
                self._errors = {}
            else:
                entries, total, errors = copy.deepcopy((entries, total, errors))
        return {
            "stats": [e.serialize() for e in entries.values() if e.num_requests or e.num_failures],
            "stats_total": total.serialize(),
            "errors": errors,
        }

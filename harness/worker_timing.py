"""A worker's own timing: the pace it keeps, measured, and the constants it does not derive from it.

Most workers cannot be time-compressed: a JVM or Go worker heartbeats every 1 s, reports stats every 3 s and
gives up on a silent master after 60 s whatever the harness passes. So the harness measures a worker's
heartbeat cadence (``Cadence``) and adopts it, and a user declares what the worker does not scale from its
heartbeat interval (``--worker-timing report=3,master-timeout=60`` or a TOML worker profile). Every case reads
the resulting ``Timing``; no case imposes one.

Pure: heartbeat times in, decisions out (the probe that records them is ``harness.pace``).
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.protocol.timing import LOCUST_TIMING, Timing

# --worker-timing keys -> Timing fields (seconds)
KEYS: dict[str, str] = {
    "heartbeat": "heartbeat_interval",
    "report": "report_interval",
    "master-timeout": "master_heartbeat_timeout",
    "connect-timeout": "connect_timeout",
    "log-report": "log_report_interval",
    "cpu-monitor": "cpu_monitor_interval",
}
NICE_INTERVALS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
SNAP = 0.2  # a measured cadence within 20 % of a round interval is that interval
# A worker visibly does not follow an asked interval when even its shortest gap is this much longer, or its longest
# this much shorter. Late heartbeats (a worker's bug) stretch some gaps, never all of them.
NOT_FOLLOWING_SLOWER = 1.6
NOT_FOLLOWING_FASTER = 0.6
MIN_GAPS = 2  # gaps a cadence is measured over, at least


def parse_worker_timing(spec: str) -> dict[str, float]:
    """``"report=3,master-timeout=60"`` -> ``{"report": 3.0, "master-timeout": 60.0}`` (a bad spec is a usage error)."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ScenarioError(f"--worker-timing: expected KEY=SECONDS with KEY one of {', '.join(KEYS)}; got {item!r}")
        out[key] = _seconds(f"--worker-timing {key}", value.strip())
    return out


def load_worker_profile(path: Path) -> WorkerProfile:
    """A TOML worker profile: optional ``worker`` (command template) and ``name``, and a ``[timing]`` table of KEYS."""
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"--worker-profile {path}: expected a readable TOML file: {exc}") from exc
    unknown = set(doc) - {"worker", "name", "timing"}
    if unknown:
        raise ScenarioError(f"--worker-profile {path}: unknown keys {sorted(unknown)}; expected worker, name, [timing]")
    timing = doc.get("timing", {})
    if not isinstance(timing, dict):
        raise ScenarioError(f"--worker-profile {path}: [timing] must be a table of {', '.join(KEYS)}")
    bad = set(timing) - set(KEYS)
    if bad:
        raise ScenarioError(f"--worker-profile {path}: unknown [timing] keys {sorted(bad)}; expected {', '.join(KEYS)}")
    for key in ("worker", "name"):
        if key in doc and not isinstance(doc[key], str):
            raise ScenarioError(f"--worker-profile {path}: {key} must be a string")
    return WorkerProfile(
        worker=doc.get("worker"),
        name=doc.get("name"),
        timing={k: _seconds(f"--worker-profile {path} [timing] {k}", v) for k, v in timing.items()},
    )


@dataclass(frozen=True)
class WorkerProfile:
    worker: str | None = None
    name: str | None = None
    timing: Mapping[str, float] | None = None


def _seconds(what: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{what}: expected a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0 or isinstance(value, bool):
        raise ScenarioError(f"{what}: expected a positive number of seconds, got {value!r}")
    return seconds


def worker_timing(heartbeat_interval: float, declared: Mapping[str, float] | None = None) -> Timing:
    """Locust's timing at ``heartbeat_interval`` (every period in Locust's proportions), with ``declared`` periods
    (KEYS) replacing the derived ones."""
    timing = LOCUST_TIMING.compressed(heartbeat_interval)
    for key, seconds in (declared or {}).items():
        if key != "heartbeat":
            timing = replace(timing, **{KEYS[key]: seconds})  # type: ignore[arg-type]  # every KEYS field is a float
    return timing


def timing_json(timing: Timing) -> dict[str, float]:
    """The periods a run used, by --worker-timing key (for results.json)."""
    return {key: round(float(getattr(timing, name)), 6) for key, name in KEYS.items()}


@dataclass(frozen=True)
class Cadence:
    """Heartbeat gaps of one worker, as the probe saw them."""

    gaps: tuple[float, ...]

    @classmethod
    def of(cls, heartbeat_times: Sequence[float]) -> Cadence:
        times = sorted(heartbeat_times)
        return cls(tuple(b - a for a, b in zip(times, times[1:], strict=False)))

    @property
    def measured(self) -> bool:
        return len(self.gaps) >= MIN_GAPS

    @property
    def median(self) -> float:
        return statistics.median(self.gaps)

    def adopted(self) -> float:
        """The interval this cadence stands for: the round interval it is within SNAP of, else the median itself."""
        median = self.median
        near = min(NICE_INTERVALS, key=lambda v: abs(math.log(median / v)))
        return near if abs(median - near) <= SNAP * near else float(f"{median:.2g}")

    def follows(self, interval: float) -> bool:
        """False if the worker visibly keeps another pace than ``interval`` (never as fast, or always faster)."""
        return min(self.gaps) <= NOT_FOLLOWING_SLOWER * interval and max(self.gaps) >= NOT_FOLLOWING_FASTER * interval

    def describe(self) -> str:
        if not self.gaps:
            return "no heartbeat gaps"
        return f"median {self.median:.3f} s (min {min(self.gaps):.3f}, max {max(self.gaps):.3f} over {len(self.gaps)} gaps)"

"""The proxy's fault plan: the fault plans of ``harness.faults``, each with a direction, plus malformed frames and
pauses. Pure data and decisions (no clock, no socket): ``now`` is passed in.

A plan file (JSON or TOML) is ``{"seed": n, "faults": [...]}`` where every fault has a ``direction``
(``to-master``: what workers send; ``to-worker``: what the master sends) and a ``kind``:

* ``delay``, ``drop``, ``duplicate``, ``hold`` (reordering): ``harness.faults.Fault``'s fields and meaning;
* ``malformed``: a matching message is replaced by the malformed frames ``malformed`` names
  (``harness.faults.MALFORMED_KINDS``), with ``types``, ``count``, ``probability``, ``start`` and ``end`` as above;
* ``pause``: nothing is read from that side in ``[start, end)`` (the messages wait in ZeroMQ's queues, as they would
  for a peer that stopped reading); ``end`` is required.

Any fault but a pause may name ``workers``: globs over worker identities (``["victim_*"]``); it then applies to those
connections only. A connection's messages go through the faults of the first group of faults (same direction, same
``workers``, in the plan's order) that names it, else through the faults without ``workers``.

Windows are seconds since the proxy started. The seed drives every probability, per direction, so the same plan fed
the same traffic gives the same decisions.
"""

from __future__ import annotations

import fnmatch
import json
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.faults import FAULT_KINDS, MALFORMED_KINDS, RAW, Fault, FaultPlan

DIRECTIONS = ("to-master", "to-worker")
PROXY_KINDS = (*FAULT_KINDS, "malformed", "pause")
_SHARED_FIELDS = frozenset({"types", "count", "probability", "start", "end"})


@dataclass(frozen=True)
class FaultGroup:
    """The delay/drop/duplicate/hold faults of one direction for the connections ``workers`` names (empty: all)."""

    direction: str
    workers: tuple[str, ...]
    plan: FaultPlan

    def names(self, identity: str) -> bool:
        return not self.workers or any(fnmatch.fnmatchcase(identity, w) for w in self.workers)


@dataclass(frozen=True)
class MalformedFault:
    """Replace matching messages going ``direction`` with the malformed frames of kind ``malformed``."""

    direction: str
    malformed: str
    workers: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    count: int | None = None
    probability: float = 1.0
    start: float = 0.0
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"direction": self.direction, "kind": "malformed", "malformed": self.malformed}
        if self.workers:
            out["workers"] = list(self.workers)
        if self.types:
            out["types"] = list(self.types)
        for name, default in (("count", None), ("probability", 1.0), ("start", 0.0), ("end", None)):
            if getattr(self, name) != default:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class Pause:
    """Read nothing from the side that sends ``direction`` in ``[start, end)`` seconds."""

    direction: str
    start: float
    end: float

    @property
    def label(self) -> str:
        """The trace window's label. A pause of what workers send is ``pause-reading``: the proxy, not the worker,
        made their heartbeats late, so the heartbeat oracles excuse it (``harness.oracles.DISRUPTIONS``)."""
        return "pause-reading" if self.direction == "to-master" else "pause-to-worker"

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "kind": "pause", "start": self.start, "end": self.end}


@dataclass(frozen=True)
class ProxyPlan:
    """Every fault of a proxy run, by direction."""

    seed: int = 0
    groups: tuple[FaultGroup, ...] = ()  # the delay/drop/duplicate/hold faults, by direction and workers
    malformed: tuple[MalformedFault, ...] = ()
    pauses: tuple[Pause, ...] = ()

    def groups_for(self, direction: str) -> list[FaultGroup]:
        """The groups of ``direction``: those naming workers first (plan order), the one for all workers last."""
        mine = [g for g in self.groups if g.direction == direction]
        return [g for g in mine if g.workers] + [g for g in mine if not g.workers]

    def to_dict(self) -> dict[str, Any]:
        faults: list[dict[str, Any]] = []
        for group in self.groups:
            named = {"workers": list(group.workers)} if group.workers else {}
            faults += [{"direction": group.direction, **named, **f.to_dict()} for f in group.plan.faults]
        faults += [m.to_dict() for m in self.malformed]
        faults += [p.to_dict() for p in self.pauses]
        return {"seed": self.seed, "faults": faults}

    @property
    def empty(self) -> bool:
        return not (self.groups or self.malformed or self.pauses)

    @classmethod
    def from_dict(cls, raw: Any) -> ProxyPlan:
        """Build a plan; every error names the fault's index and field (ScenarioError: the plan asked the impossible)."""
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"a proxy fault plan must be an object with 'faults', got {raw!r}")
        unknown = sorted(set(raw) - {"faults", "seed"})
        if unknown:
            raise ScenarioError(f"proxy fault plan field {unknown[0]!r}: unknown (known fields: faults, seed)")
        seed = raw.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ScenarioError(f"proxy fault plan field 'seed': expected an integer, got {seed!r}")
        items = raw.get("faults", [])
        if not isinstance(items, list):
            raise ScenarioError(f"proxy fault plan field 'faults': expected a list, got {items!r}")
        by_group: dict[tuple[str, tuple[str, ...]], list[Fault]] = {}
        malformed: list[MalformedFault] = []
        pauses: list[Pause] = []
        for i, item in enumerate(items):
            try:
                _parse_one(item, by_group, malformed, pauses)
            except ScenarioError as exc:
                raise ScenarioError(f"faults[{i}]: {exc}") from None
        groups = tuple(FaultGroup(d, w, FaultPlan(tuple(faults), seed)) for (d, w), faults in by_group.items())
        return cls(seed, groups, tuple(malformed), tuple(pauses))


def _workers(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(w, str) and w for w in raw):
        raise ScenarioError(f"fault field 'workers': expected a list of identity globs, got {raw!r}")
    return tuple(raw)


def _parse_one(
    item: Any, by_group: dict[tuple[str, tuple[str, ...]], list[Fault]], malformed: list[MalformedFault], pauses: list[Pause]
) -> None:
    if not isinstance(item, Mapping):
        raise ScenarioError(f"a fault must be an object with a 'direction' and a 'kind', got {item!r}")
    direction = item.get("direction")
    if direction not in DIRECTIONS:
        raise ScenarioError(f"fault field 'direction': expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
    kind = item.get("kind")
    workers = _workers(item.get("workers"))
    rest = {k: v for k, v in item.items() if k not in ("direction", "workers")}
    if kind == "pause" and workers:
        raise ScenarioError("fault field 'workers': a pause stops reading a whole side, it cannot name workers")
    if kind in FAULT_KINDS:
        by_group.setdefault((direction, workers), []).append(Fault.from_dict(rest))
        return
    if kind == "malformed":
        fields = {k: v for k, v in rest.items() if k not in ("kind", "malformed")}
        extra = sorted(set(fields) - _SHARED_FIELDS)
        if extra:
            raise ScenarioError(
                f"fault field {extra[0]!r}: a malformed fault takes malformed, {', '.join(sorted(_SHARED_FIELDS))}"
            )
        name = rest.get("malformed")
        if name not in MALFORMED_KINDS:
            raise ScenarioError(f"fault field 'malformed': expected one of {', '.join(MALFORMED_KINDS)}, got {name!r}")
        # Fault checks the shared fields (as a drop: the only kind without fields of its own).
        checked = Fault.from_dict({"kind": "drop", **fields})
        malformed.append(
            MalformedFault(
                direction, name, workers, checked.types, checked.count, checked.probability, checked.start, checked.end
            )
        )
        return
    if kind == "pause":
        extra = sorted(set(rest) - {"kind", "start", "end"})
        if extra:
            raise ScenarioError(f"fault field {extra[0]!r}: a pause takes only start and end")
        if "end" not in rest:
            raise ScenarioError("fault field 'end': a pause needs one (seconds since the proxy started)")
        checked = Fault.from_dict({"kind": "drop", "start": rest.get("start", 0.0), "end": rest["end"]})
        assert checked.end is not None
        pauses.append(Pause(direction, checked.start, checked.end))
        return
    raise ScenarioError(f"fault field 'kind': expected one of {', '.join(PROXY_KINDS)}, got {kind!r}")


def load_plan(path: Path) -> ProxyPlan:
    """Read a plan from a JSON or TOML file (by its suffix; JSON otherwise)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(f"proxy fault plan {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"proxy fault plan {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from None
    return ProxyPlan.from_dict(raw)


class MalformedChooser:
    """Which messages the malformed faults replace; deterministic for a seed (pure: ``now`` is passed in)."""

    def __init__(self, faults: tuple[MalformedFault, ...], seed: int, started_at: float) -> None:
        self.faults = faults
        self.started_at = started_at
        self._rng = random.Random(seed)
        self._uses = [0] * len(faults)

    def choose(self, direction: str, identity: str, message_type: str | None, now: float) -> MalformedFault | None:
        """The malformed fault that replaces this message, if one fires (at most one per message)."""
        kind = RAW if message_type is None else message_type
        elapsed = now - self.started_at
        for i, fault in enumerate(self.faults):
            if fault.direction != direction or (fault.types and kind not in fault.types):
                continue
            if fault.workers and not any(fnmatch.fnmatchcase(identity, w) for w in fault.workers):
                continue
            if elapsed < fault.start or (fault.end is not None and elapsed >= fault.end):
                continue
            if fault.count is not None and self._uses[i] >= fault.count:
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            self._uses[i] += 1
            return fault
        return None

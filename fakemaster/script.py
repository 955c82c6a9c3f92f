"""Scripts: lists of steps, loaded from JSON or TOML, run against a FakeMaster.

A script file is ``{"heartbeat_interval": 1.0, "steps": [...]}`` (TOML: the
same keys, ``[[steps]]`` tables). Steps:

====================  ==========================================================
``{"expect": T, "within": S, "where": {...}}``  the next ``T`` within S s whose data matches
``{"expect_none": T, "within": S}``             no ``T`` for S s
``{"send": T, "data": D, "to": ID}``            send a message (``to`` defaults to the worker)
``{"spawn": {"Cls": n}, "stop_timeout": S}``    a complete spawn with a fresh timestamp
``{"send_raw": ["hex", ...]}``                  raw payload frames, given in hex
``{"sleep": S}``                                let S seconds pass
``{"auto": {"ack": b, "heartbeat": b, "liveness": b}}``  switch automatic behaviours
``{"expect_exit": code, "within": S}``          the worker process ends (code null: any)
``{"expect_connection": true, "within": S}``     a new connection after the master's last send (an answer to
                                                ``reconnect``); later expects read what came over it
``{"note": "text"}``                            a line in the trace
``{"faults": [{...}, ...], "seed": 1}``         install a fault plan (``harness.faults.Fault`` fields)
``{"clear_faults": true}``                      remove the fault plan (held messages go now)
``{"pause_reading": S}``                        stop reading for S s (``true``: until resumed)
``{"resume_reading": true}``                    read again
``{"silence": S}``                              answer no heartbeats for S s (``true``: for good)
``{"restart": S}``                              close the ROUTER, forget workers, rebind after S s
``{"die": true}``                               close the ROUTER for good
``{"storm": {...}, "wait": false}``             a send storm (``fakemaster.storm.StormSpec`` fields);
                                                ``wait`` (default true) waits for its end
``{"send_malformed": K, "size": n, "to": ID}``  malformed frames of kind K (``MALFORMED_KINDS``)
====================  ==========================================================

Fault, storm and malformed specs are validated when the script is parsed.

``where`` maps dotted paths into ``data`` to a value (equality) or to one
operator: ``{"stats_total.num_requests": {">": 0}}``; operators are
``== != > >= < <= in``. In ``data``, the strings ``"$now"`` (wall-clock time)
and ``"$worker"`` (the worker's node id) are substituted.
"""

from __future__ import annotations

import json
import operator
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import ConformanceError, ExpectationFailed, HarnessFault, ScenarioError
from harness.faults import MALFORMED_KINDS, FaultPlan
from harness.trace import TraceRecord

from fakemaster.master import FakeMaster
from fakemaster.storm import StormSpec

STEP_KINDS = ("expect", "expect_none", "send", "spawn", "send_raw", "sleep", "auto", "expect_exit", "note", "expect_connection")
# Steps that disturb the traffic on purpose (harness.faults, fakemaster.storm); validated at parse time.
FAULT_STEP_KINDS = (
    "faults",
    "clear_faults",
    "pause_reading",
    "resume_reading",
    "silence",
    "restart",
    "die",
    "storm",
    "send_malformed",
)
ALL_STEP_KINDS = STEP_KINDS + FAULT_STEP_KINDS
FLAG_STEPS = ("clear_faults", "resume_reading", "die", "expect_connection")  # take the value true
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "in": lambda a, b: a in b,
}
DEFAULT_WITHIN = 5.0
AUTO_KEYS = frozenset({"ack", "heartbeat", "liveness"})


class Process(Protocol):
    """What ``expect_exit`` needs of a worker process."""

    def wait(self, timeout: float) -> int | None: ...


@dataclass(frozen=True)
class Step:
    index: int
    kind: str
    spec: Mapping[str, Any]

    def __str__(self) -> str:
        return f"step {self.index + 1} {json.dumps(dict(self.spec), default=repr)}"


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...]
    heartbeat_interval: float = 1.0
    name: str = "script"


@dataclass
class ScriptResult:
    steps_run: int = 0
    error: ConformanceError | None = None
    failed_step: Step | None = None
    exit_code: int | None = None
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def load_script(path: Path) -> Script:
    """Read a JSON (.json) or TOML (.toml) script; ScenarioError says what is wrong and where."""
    try:
        text = path.read_text("utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read script {path}: {exc}") from exc
    return parse_script(raw, name=path.stem)


def parse_script(raw: Any, name: str = "script") -> Script:
    if isinstance(raw, list):
        raw = {"steps": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise ScenarioError(f"script {name}: expected an object with a 'steps' list, got {type(raw).__name__}")
    steps = tuple(_parse_step(i, s) for i, s in enumerate(raw["steps"]))
    interval = raw.get("heartbeat_interval", 1.0)
    if not _is_seconds(interval) or interval <= 0:
        raise ScenarioError(f"script {name}: heartbeat_interval must be a positive number, got {interval!r}")
    return Script(steps, float(interval), str(raw.get("name", name)))


def _parse_step(index: int, spec: Any) -> Step:
    if not isinstance(spec, dict):
        raise ScenarioError(f"step {index + 1}: expected an object, got {spec!r}")
    kinds = [k for k in ALL_STEP_KINDS if k in spec]
    if len(kinds) != 1:
        raise ScenarioError(f"step {index + 1}: needs exactly one of {', '.join(ALL_STEP_KINDS)}; got keys {sorted(spec)}")
    for key in ("within", "sleep"):
        if key in spec and (not _is_seconds(spec[key]) or spec[key] < 0):
            raise ScenarioError(f"step {index + 1}: {key!r} must be a non-negative number of seconds, got {spec[key]!r}")
    if "where" in spec:
        _check_where(index, spec["where"])
    if kinds[0] == "auto":
        auto = spec["auto"]
        if (
            not isinstance(auto, dict)
            or not auto
            or not set(auto) <= AUTO_KEYS
            or not all(isinstance(v, bool) for v in auto.values())
        ):
            raise ScenarioError(f"step {index + 1}: auto takes a map of {sorted(AUTO_KEYS)} to true/false, got {auto!r}")
    if kinds[0] == "expect_exit" and not (spec["expect_exit"] is None or _is_int(spec["expect_exit"])):
        raise ScenarioError(f"step {index + 1}: expect_exit takes an exit code or null, got {spec['expect_exit']!r}")
    if kinds[0] == "send_raw":
        try:
            [bytes.fromhex(h) for h in spec["send_raw"]]
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"step {index + 1}: send_raw takes a list of hex strings ({exc})") from exc
    _check_fault_step(index, kinds[0], spec)
    return Step(index, kinds[0], spec)


def _check_fault_step(index: int, kind: str, spec: Mapping[str, Any]) -> None:
    """Validate the fault and storm steps at parse time; ScenarioError names the step."""
    where = f"step {index + 1} ({kind})"
    value = spec[kind]
    try:
        if kind == "faults":
            FaultPlan.from_dict({"faults": value, "seed": spec.get("seed", 0)})
        elif kind == "storm":
            StormSpec.from_dict(value)
            if not isinstance(spec.get("wait", True), bool):
                raise ScenarioError(f"'wait' must be true or false, got {spec['wait']!r}")
        elif kind in FLAG_STEPS and value is not True:
            raise ScenarioError(f"takes the value true, got {value!r}")
        elif kind in ("pause_reading", "silence") and value is not True and (not _is_seconds(value) or value < 0):
            raise ScenarioError(f"takes a non-negative number of seconds or true, got {value!r}")
        elif kind == "restart" and (not _is_seconds(value) or value < 0):
            raise ScenarioError(f"takes a non-negative number of seconds (the time down), got {value!r}")
        elif kind == "send_malformed":
            if value not in MALFORMED_KINDS:
                raise ScenarioError(f"takes one of {', '.join(MALFORMED_KINDS)}, got {value!r}")
            size = spec.get("size", 0)
            if not _is_int(size) or size < 0:
                raise ScenarioError(f"'size' must be a non-negative integer, got {size!r}")
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_where(index: int, where: Any) -> None:
    if not isinstance(where, dict):
        raise ScenarioError(f"step {index + 1}: 'where' must map data paths to values, got {where!r}")


_MISSING = object()


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, dict) and part.lstrip("-").isdigit() and int(part) in data:
            data = data[int(part)]
        else:
            return _MISSING
    return data


def where_matches(where: Mapping[str, Any], data: Any) -> bool:
    """True if every path in ``where`` holds in ``data`` (equality, or one operator)."""
    for path, cond in where.items():
        value = _lookup(data, path)
        if value is _MISSING:
            return False
        if isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in OPERATORS:
            op, operand = next(iter(cond.items()))
            try:
                if not OPERATORS[op](value, operand):
                    return False
            except TypeError:
                return False
        elif value != cond:
            return False
    return True


def substitute(value: Any, master: FakeMaster) -> Any:
    if value == "$now":
        return master.clock.wall()
    if value == "$worker":
        return master.default_worker()
    if isinstance(value, dict):
        return {k: substitute(v, master) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, master) for v in value]
    return value


def run_script(master: FakeMaster, script: Script, process: Process | None = None) -> ScriptResult:
    """Run every step in order; stop at the first failure, whose kind says whose fault it is."""
    result = ScriptResult()
    for step in script.steps:
        master.note(f"{step}")
        try:
            _run_step(master, step, process, result)
        except ConformanceError as exc:
            result.error, result.failed_step = exc, step
            master.note(f"{step} failed: {exc}")
            return result
        result.steps_run += 1
    return result


def _run_step(master: FakeMaster, step: Step, process: Process | None, result: ScriptResult) -> None:
    spec, kind = step.spec, step.kind
    within = float(spec.get("within", DEFAULT_WITHIN))
    if kind in ("expect", "expect_none"):
        where = spec.get("where")
        predicate = (lambda r: where_matches(where, r.message.data if r.message else None)) if where else None
        if kind == "expect":
            master.expect(spec["expect"], within, predicate, description=f"with {json.dumps(where)}" if where else "")
        else:
            master.expect_none(spec["expect_none"], within, predicate)
    elif kind == "send":
        _require_sent(master.send(spec["send"], substitute(spec.get("data"), master), spec.get("to")), step)
    elif kind == "spawn":
        counts = spec["spawn"]
        if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
            raise ScenarioError(f"{step}: spawn takes a map of user class to a non-negative count")
        _require_sent(master.spawn(counts, to=spec.get("to"), stop_timeout=float(spec.get("stop_timeout", 0.0))), step)
    elif kind == "send_raw":
        _require_sent(master.send_raw([bytes.fromhex(h) for h in spec["send_raw"]], spec.get("to")), step)
    elif kind == "sleep":
        master.sleep(float(spec["sleep"]))
    elif kind == "auto":
        master.set_auto(**spec["auto"])
    elif kind == "note":
        master.note(str(spec["note"]))
    elif kind == "expect_exit":
        _expect_exit(step, process, within, result)
    elif kind == "expect_connection":
        master.expect_connection(within)
    else:
        _run_fault_step(master, step)


def _run_fault_step(master: FakeMaster, step: Step) -> None:
    spec, kind = step.spec, step.kind
    value = spec[kind]
    if kind == "faults":
        master.install_faults(FaultPlan.from_dict({"faults": value, "seed": spec.get("seed", 0)}))
    elif kind == "clear_faults":
        master.clear_faults()
    elif kind == "pause_reading":
        master.pause_reading(None if value is True else float(value))
    elif kind == "resume_reading":
        master.resume_reading()
    elif kind == "silence":
        master.silence(None if value is True else float(value))
    elif kind == "restart":
        master.restart(float(value))
    elif kind == "die":
        master.die()
    elif kind == "storm":
        storm = StormSpec.from_dict(value)
        if spec.get("wait", True):
            outcome = master.storm(storm)
            if outcome.errors:
                raise HarnessFault(f"{step}: the storm failed: {'; '.join(outcome.errors)}")
        else:
            master.storm_async(storm)
    elif kind == "send_malformed":
        _require_sent(master.send_malformed(value, spec.get("to"), int(spec.get("size", 0))), step)


def _require_sent(sent: bool, step: Step) -> None:
    if not sent:
        raise HarnessFault(f"{step}: the socket refused the message (no such peer, or high-water mark reached)")


def _expect_exit(step: Step, process: Process | None, within: float, result: ScriptResult) -> None:
    if process is None:
        raise ScenarioError(f"{step}: expect_exit needs a worker process started by the harness")
    code = process.wait(within)
    result.exit_code = code
    wanted = step.spec["expect_exit"]
    if code is None:
        raise ExpectationFailed("expect.exit", f"the worker process to exit within {within:g} s", "still running")
    if wanted is not None and code != wanted:
        raise ExpectationFailed("expect.exit", f"exit code {wanted}", f"exit code {code}")


def first_message_or_exit(master: FakeMaster, process: Process, within: float) -> TraceRecord | None:
    """Wait for the worker's first message, checking all along that its process is still alive."""
    deadline_slices = max(1, int(within / 0.1))
    for _ in range(deadline_slices):
        record = master.wait_for(None, 0.1, after=0)
        if record is not None:
            return record
        if process.wait(0) is not None:
            return None
    return None

"""The compatibility matrix: real Locust workers of several releases x the master profiles (docs/compatibility.md).

``run_matrix`` runs the catalog for every (worker, profile) pair and keeps each run's results.json; ``render``
turns the matrix into the Markdown page, every non-OK case explained by the first ``Explanation`` that matches it
(an unexplained one says so, and a test refuses the page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.catalog import Case
from harness.protocol.profiles import PROFILES, MasterProfile
from harness.runner import RunConfig, run_catalog

UNEXPLAINED = "UNEXPLAINED"


@dataclass(frozen=True)
class Explanation:
    """Why a case is not OK for a worker release under a master profile (``applies`` decides where it holds)."""

    key: str
    applies: Callable[[tuple[int, ...], str, str, frozenset[str]], bool]  # (worker release, profile, case id, oracles)
    text: str
    only: str = ""  # "locust": holds for Locust's own worker (locust@VERSION) only


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _worker_version(worker: str) -> tuple[int, ...]:
    """A ``locust@VERSION`` worker's release; any other (the reference worker, a command) counts as the newest."""
    return _release(worker.partition("@")[2]) if worker.startswith("locust@") else NEWEST


NEWEST = (2, 47, 0)


_DEAF = frozenset({"progress", "progress.spawn", "progress.stop", "socket.output", "socket.traceback", "shutdown.exit"})


def _heartbeats_only(oracles: frozenset[str]) -> bool:
    return bool(oracles) and all(o.startswith("heartbeat.") for o in oracles)


def _only(oracles: frozenset[str], allowed: frozenset[str]) -> bool:
    """Every oracle that gave the case its verdict is one the explanation covers (heartbeat.* always may follow)."""
    return bool(oracles) and all(o in allowed or o.startswith("heartbeat.") for o in oracles)


_LOCUST_ONLY = "locust"  # an explanation about Locust's own worker: never for the reference worker or a command

EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        "ack-wait",
        lambda w, p, c, o: "handshake.ack-required" in o and _only(o, frozenset({"handshake.ack-required"})),
        "the worker (2.10+) waits for an ack that a master before 2.10 never sends: it never heartbeats, so the master "
        "marks it missing 4-5 s after each client_ready (every retry re-creates the node), and after 61 unanswered "
        "tries (about 5 minutes) the worker exits with 255 (locust-versions.md section 2)",
    ),
    Explanation(
        "parsed-options",
        lambda w, p, c, o: p == "2.0" and w >= (2, 2) and _only(o, _DEAF),
        "a 2.0/2.1 master's spawn has no parsed_options, which a 2.2+ worker reads unconditionally: its message "
        "greenlet dies of the KeyError and no spawn is ever applied (locust-versions.md section 4)",
        _LOCUST_ONLY,
    ),
    Explanation(
        "receive-loop-dies",
        lambda w, p, c, o: (c.startswith("malformed/") or c == "storms/03-mixed-flood") and _only(o, _DEAF),
        "Locust's worker lets an undecodable frame or a payload of the wrong types end its receive greenlet: heartbeats "
        "go on, but no later spawn, stop or quit is handled (every release; docs/locust-worker-verdicts.md)",
        _LOCUST_ONLY,
    ),
    Explanation(
        "no-retry-before-2.10",
        lambda w, p, c, o: w < (2, 10) and c == "handshake/02-retry-until-ack" and _only(o, frozenset({"progress"})),
        "before 2.10 the worker sends client_ready once and never waits for an ack (its masters sent none): a "
        "client_ready that is lost, or left unanswered as this case does, is never sent again",
        _LOCUST_ONLY,
    ),
    Explanation(
        "no-reconnect-before-2.10",
        lambda w, p, c, o: w < (2, 10) and c == "reconnect/01-reconnect-message" and _only(o, frozenset({"reconnect.socket"})),
        "reconnect is a 2.10 message: an older worker ignores it and keeps the connection the master gave up on",
        _LOCUST_ONLY,
    ),
    Explanation(
        "no-master-timeout-before-2.19",
        lambda w, p, c, o: (
            w < (2, 19)
            and c in ("reconnect/03-master-silence-timeout", "reconnect/04-master-death")
            and _only(o, frozenset({"shutdown.master-silence", "shutdown.master-death"}))
        ),
        "the worker's 60 s master timeout is 2.19's (with the master's heartbeat replies): an older worker never gives "
        "up on a silent or dead master (optional, hence UNIMPLEMENTED; locust-versions.md section 1)",
        _LOCUST_ONLY,
    ),
    Explanation(
        "spawning-complete-per-message",
        lambda w, p, c, o: (
            w < (2, 29)
            and c == "timing/02-reordered-spawns"
            and _only(o, frozenset({"order.spawn-counts", "spawn.stale", "progress"}))
        ),
        "before 2.29 the worker sends spawning_complete from its local event, which fires for the spawn it is still "
        "ramping when a stale one arrives: it reports the older count and never the newest (issue #2671, fixed by "
        "PR #2728 in 2.29.0)",
        _LOCUST_ONLY,
    ),
    Explanation(
        "identity-race",
        lambda w, p, c, o: c == "reconnect/01-reconnect-message" and _only(o, frozenset({"reconnect.identity-race"})),
        "Locust's worker reconnects at once with the same identity and can lose the race against its own old "
        "connection: the master's ROUTER then ignores the new one (docs/locust-expected.json)",
        _LOCUST_ONLY,
    ),
    Explanation(
        "flood-logging",
        lambda w, p, c, o: c in ("storms/01-unknown-type-flood", "storms/04-stale-spawn-flood") and _heartbeats_only(o),
        "Locust's worker logs every unknown or stale message of a flood in its one event loop, and its heartbeats fall "
        "behind (at 0.2 s intervals here: five times less margin than at Locust's 1 s); how far varies by release and "
        "by run",
        _LOCUST_ONLY,
    ),
    Explanation(
        "gevent-jitter",
        lambda w, p, c, o: o == {"heartbeat.gap"},
        "one heartbeat gap just past the 1.5-interval margin (NON-STRICT: the master still counts the worker alive): "
        "Locust's gevent loop runs its heartbeat late now and then, which at 0.2 s intervals on a loaded machine crosses "
        "the margin; at Locust's own 1 s pace it does not (tests/interop/test_foreign_workers.py)",
        _LOCUST_ONLY,
    ),
)


def explain(worker: str, profile: str, case: dict[str, Any]) -> str:
    """The key of the first explanation that matches ``case`` (a results.json case entry), or UNEXPLAINED. A crash of
    the master (``master.crashed``) is never explained away."""
    oracles = frozenset(f["oracle"] for f in case["findings"] if f["verdict"] == case["verdict"])
    if "master.crashed" in oracles:
        return UNEXPLAINED
    version = _worker_version(worker)
    locust = worker.startswith("locust@")
    for explanation in EXPLANATIONS:
        if explanation.only == _LOCUST_ONLY and not locust:
            continue
        if explanation.applies(version, profile, case["id"], oracles):
            return explanation.key
    return UNEXPLAINED


def run_matrix(
    workers: Sequence[str],
    profiles: Sequence[MasterProfile],
    cases: list[Case],
    out: Path,
    interval: float,
    jobs: int | str,
    command: str = "",
) -> dict[str, Any]:
    """Run ``cases`` for every worker x profile into ``out/<worker>/<profile>/``; returns the matrix (also written to
    ``out/compatibility.json``)."""
    for worker in workers:
        for profile in profiles:
            folder = out / _folder(worker) / profile.name
            folder.mkdir(parents=True, exist_ok=True)
            config = RunConfig(worker, f"{worker}@{profile.name}", interval, master_profile=profile)
            print(f"== {worker} under master profile {profile.name}", flush=True)
            run_catalog(cases, config, folder, jobs=jobs)
    return matrix_of(workers, [p.name for p in profiles], out, interval, command)


def matrix_of(workers: Sequence[str], profiles: Sequence[str], out: Path, interval: float, command: str = "") -> dict[str, Any]:
    """The matrix of the runs ``run_matrix`` left under ``out`` (each cell read from its results.json, every non-OK
    case explained afresh), with the ``command`` that made it; written to ``out/compatibility.json``."""
    matrix: dict[str, Any] = {"interval": interval, "workers": list(workers), "profiles": list(profiles), "cells": {}}
    if command:
        matrix["command"] = command
    for worker in workers:
        for profile in profiles:
            doc = json.loads((out / _folder(worker) / profile / "results.json").read_text("utf-8"))
            matrix["cells"][f"{worker} {profile}"] = {
                "summary": {k: v for k, v in doc["summary"].items() if v},
                "not_run": len(doc["not_run"]),
                "cases": {
                    c["id"]: {"verdict": c["verdict"], "explanation": explain(worker, profile, c)}
                    for c in doc["cases"]
                    if c["verdict"] != "OK"
                },
            }
    (out / "compatibility.json").write_text(json.dumps(matrix, indent=2) + "\n", "utf-8")
    return matrix


def _folder(worker: str) -> str:
    return worker.replace("@", "-")


def render(matrix: dict[str, Any]) -> str:
    """docs/compatibility.md from a matrix ``run_matrix`` made (``matrix["command"]``: the command that made it)."""
    command = matrix.get("command", "locust-conformance compatibility")
    workers, profiles = matrix["workers"], matrix["profiles"]
    texts = {e.key: e.text for e in EXPLANATIONS}
    lines = [
        "# Compatibility: real Locust workers x master profiles",
        "",
        f"Generated by `{command}` (heartbeat interval {matrix['interval']:g} s, time-compressed).",
        "Each cell is the catalog's verdicts for the real Locust worker of that release (rows) under the fake master",
        "behaving like that master release range (columns, [master-profiles.md](master-profiles.md)). A case that does",
        "not apply under a profile is not run. Every non-OK case is explained below; the matrix data is",
        "[compatibility.json](compatibility.json).",
        "",
        "| worker | " + " | ".join(f"master {p} ({PROFILES[p].stands_for})" for p in profiles) + " |",
        "|---|" + "---|" * len(profiles),
    ]
    for worker in workers:
        cells = [_cell(matrix["cells"][f"{worker} {p}"]) for p in profiles]
        lines.append(f"| {worker} | " + " | ".join(cells) + " |")
    lines += ["", "## Why", ""]
    for worker in workers:
        for profile in profiles:
            cell = matrix["cells"][f"{worker} {profile}"]
            if not cell["cases"]:
                continue
            lines.append(f"### {worker} under master {profile}")
            lines.append("")
            by_key: dict[str, list[str]] = {}
            for case_id, entry in cell["cases"].items():
                by_key.setdefault(entry["explanation"], []).append(f"`{case_id}` {entry['verdict']}")
            for key, cases in by_key.items():
                lines.append(f"- {', '.join(cases)}: {texts.get(key, UNEXPLAINED)}")
            lines.append("")
    return "\n".join(lines)


def _cell(cell: dict[str, Any]) -> str:
    summary = ", ".join(f"{k} {v}" for k, v in cell["summary"].items())
    return summary + (f" (not run {cell['not_run']})" if cell["not_run"] else "")

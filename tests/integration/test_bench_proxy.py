"""bench/proxy.py end to end at tiny sizes: the tables' shape and the JSON's, never the timing.

Runs the script itself (its children in their own process groups, reaped by the script): a few simulated workers
direct, through the raw forwarder and through the proxy, against the echo peer (added latency, then a short flood);
and, where the real Locust is installed, three of bench/swarm.py's workers against the real master, direct and
through the proxy. Every heartbeat is answered and every message the proxy read it forwarded.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "bench" / "proxy.py"
PATHS = ["direct", "raw", "proxy"]


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "proxy.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


def table(stdout: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """The Markdown table whose header starts with ``first_header``: its headers and rows of cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    assert lines[start + 1].startswith("|---|")
    headers = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return headers, rows


def test_latency_and_throughput_tables(tmp_path: Path) -> None:
    stdout, result = run_bench(
        tmp_path,
        *("--parts", "latency,throughput", "--workers", "1,3", "--seconds", "1"),
        *("--flood-workers", "3", "--flood-seconds", "1"),
    )
    assert result["benchmark"] == "proxy" and result["errors"] == []

    headers, rows = table(stdout, "workers | msg/s")
    assert headers[2:6] == ["path", "samples", "round trip p50 / p99 / max (ms)", "added per message p50 / p99 (ms)"]
    assert [(r[0], r[2]) for r in rows] == [(n, p) for n in ("1", "3") for p in PATHS]
    assert all(len(r) == len(headers) for r in rows)
    for row in result["latency"]:
        assert row["acked"] == row["workers"] and row["samples"] > 0 and row["unanswered"] == 0, row
        assert row["rt_p50_ms"] is not None and row["rt_p99_ms"] >= row["rt_p50_ms"]
        assert (row["added_p99_ms"] is None) == (row["path"] == "direct")
    proxied = [r["forwarder"]["counts"] for r in result["latency"] if r["path"] == "proxy"]
    for counts in proxied:  # the proxy forwarded what it read, both ways, and nothing was refused
        for direction in ("to-master", "to-worker"):
            assert counts[direction]["read"] == counts[direction]["forwarded"] > 0
            assert counts[direction]["refused"] == 0

    headers, rows = table(stdout, "workers | path | sent")
    assert headers[4:] == ["msg/s", "forwarder CPU (%)", "msg per CPU s", "msg/s vs raw", "per CPU s vs raw"]
    assert [r[1] for r in rows] == PATHS and all(len(r) == len(headers) for r in rows)
    for row in result["throughput"]:
        assert row["workers"] == 3 and row["arrived_in_window"] > 0 and row["msg_s"] > 0, row
    (check,) = [c for c in result["checks"] if "throughput" in c["what"]]
    assert isinstance(check["met"], bool)
    assert ("MET   " if check["met"] else "MISSED") + " proxy throughput" in stdout


def test_the_real_master_table(tmp_path: Path) -> None:
    if importlib.util.find_spec("locust") is None:  # found without importing it (it monkey-patches on import)
        pytest.skip("the real Locust is not installed (pip install .[locust])")
    stdout, result = run_bench(tmp_path, "--parts", "master", "--master-workers", "3", "--master-seconds", "2")
    assert result["errors"] == []
    headers, rows = table(stdout, "path | workers | acked")
    assert headers[4:6] == ["reply p50 / p99 / max (ms)", "later than direct p50 / p99 (ms)"]
    assert [(r[0], r[2]) for r in rows] == [("direct", "3/3"), ("proxy", "3/3")]
    assert all(len(r) == len(headers) for r in rows)
    for row in result["master"]:
        assert row["acked"] == 3 and row["samples"] > 0 and row["unanswered"] == 0, row
        assert row["master_missing_marks"] == 0
    (check,) = [c for c in result["checks"] if "real master" in c["what"]]
    assert isinstance(check["met"], bool)

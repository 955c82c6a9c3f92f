"""Detection latency per oracle: from the start of a bug's symptom to the evidence, and to the verdict.

    python bench/detection_latency.py [--runs 3] [--defects a,b] [--out bench/results-detection-latency.json]

Every named defect of the reference worker runs on the catalog case meant to catch it (harness/mutation.py),
``--runs`` times. For each caught run the deciding finding names the oracle; the symptom starts at
- ``heartbeat.*``: the worker's last heartbeat before the evidence (the silence began there);
- ``progress*``: the master's spawn / stop / quit that went unanswered (evidence: its deadline passed);
- any other oracle: the moment of its evidence (the offending message, the crash), so only the verdict latency counts.
Evidence latency = evidence - symptom; verdict latency = when the case returned its verdict - symptom (the whole
case is judged at its end). The baseline printed beside each heartbeat row is the real Locust master's own
missing rule at the same interval (4-5 intervals after the last heartbeat; perf-anchors measured 4.01-4.99 s
at 1 s), the only one of our oracles the real master has.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.catalog import by_id
from harness.mutation import MUTANTS, MUTANTS_BY_DEFECT, command_for
from harness.protocol.timing import LOCUST_TIMING
from harness.runner import DEFAULT_INTERVAL, CaseResult, RunConfig, run_case
from harness.verdicts import Finding

REQUESTS = ("spawn", "stop", "quit")


def timed(finding: Finding, result: CaseResult) -> tuple[float, float] | None:
    """``(symptom start, evidence moment)`` of a finding, seconds since the master started; None if unknown.

    Oracles that judge a deadline (progress.spawn: "... within 0.80 s of spawn", heartbeat.gap: "at most 0.320 s")
    stamp the finding with the start of the wait; their evidence exists once the deadline has passed.
    """
    limit = re.search(r"(?:within|at most|above) ([0-9.]+) s", finding.expected)
    if finding.at is None:  # e.g. shutdown.exit: "the process exits within 1.20 s of quit"
        asked = re.search(r"within ([0-9.]+) s of (\w+)", finding.expected)
        sent = _requests_sent(Path(result.artifacts) / "trace.jsonl", asked.group(2)) if asked else []
        return (sent[-1], sent[-1] + float(asked.group(1))) if asked and sent else None
    at = finding.at
    if (
        finding.oracle.startswith("progress.")
        or finding.oracle == "heartbeat.gap"
        or (finding.oracle == "heartbeat.missing" and "gap without heartbeats" in finding.observed)
    ):
        return (at, at + float(limit.group(1))) if limit else None
    if finding.oracle.startswith("heartbeat."):  # marked missing by the real master's rule, at ``at``
        beats = [t for t in result.timeline.get("heartbeats", []) if t <= at]
        acked = result.timeline.get("acked_at")
        start = max(beats) if beats else (float(acked) if acked is not None else None)
        return None if start is None else (start, at)
    if finding.oracle == "progress":  # the case's own deadline passed at ``at``
        before = [t for t in _requests_sent(Path(result.artifacts) / "trace.jsonl") if t <= at + 1e-6]
        return (max(before), at) if before else None
    return at, at


def _requests_sent(trace: Path, *types: str) -> list[float]:
    times = []
    if trace.is_file():
        for line in trace.read_text("utf-8").splitlines():
            record = json.loads(line)
            if record.get("kind") == "send" and record.get("type") in (types or REQUESTS):
                times.append(float(record["t"]))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--defects", default=None, help="comma-separated (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    mutants = [MUTANTS_BY_DEFECT[d] for d in args.defects.split(",")] if args.defects else list(MUTANTS)
    samples: dict[str, list[dict[str, Any]]] = {}
    missed: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.runs + 1):
            for mutant in mutants:
                case = by_id(mutant.cases[0])
                config = RunConfig(command_for(mutant.defect), mutant.defect, DEFAULT_INTERVAL)
                result = run_case(case, config, Path(tmp) / f"{mutant.defect}-{run}")
                deciding = mutant.deciding(result.findings)
                if not mutant.caught(result) or not deciding:
                    missed.append(f"{mutant.defect} run {run}: {result.verdict.value} {result.summary()}"[:200])
                    continue
                finding = min(deciding, key=lambda f: f.at if f.at is not None else float("inf"))
                moments = timed(finding, result)
                if moments is None:
                    missed.append(f"{mutant.defect} run {run}: no symptom start for {finding.oracle}")
                    continue
                start, evidence = moments
                family = finding.oracle
                samples.setdefault(family, []).append(
                    {
                        "defect": mutant.defect,
                        "case": case.id,
                        "evidence_s": round(evidence - start, 4),
                        "verdict_s": round(result.duration - start, 4),
                        "interval": result.timeline.get("interval", DEFAULT_INTERVAL),
                    }
                )
                print(
                    f"[{run}] {mutant.defect:<26} {family:<22} evidence {evidence - start:6.3f} s  "
                    f"verdict {result.duration - start:6.2f} s",
                    flush=True,
                )
    rows = []
    for family, items in sorted(samples.items()):
        ev = [i["evidence_s"] for i in items]
        ve = [i["verdict_s"] for i in items]
        interval = float(items[0]["interval"])
        timing = LOCUST_TIMING.compressed(interval)
        baseline = (
            f"{timing.missing_after_min:.2f}-{timing.missing_after_max:.2f} s" if family.startswith("heartbeat.missing") else "-"
        )
        rows.append(
            {
                "oracle": family,
                "defects": sorted({i["defect"] for i in items}),
                "n": len(items),
                "interval_s": interval,
                "evidence_p50_s": round(statistics.median(ev), 3),
                "evidence_max_s": round(max(ev), 3),
                "verdict_p50_s": round(statistics.median(ve), 3),
                "verdict_max_s": round(max(ve), 3),
                "real_master_rule": baseline,
            }
        )
    print()
    print("| oracle | defects | n | evidence p50 / max | verdict p50 / max | real master's rule (same interval) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['oracle']} | {', '.join(r['defects'])} | {r['n']} | {r['evidence_p50_s']:.3f} / {r['evidence_max_s']:.3f} s "
            f"| {r['verdict_p50_s']:.2f} / {r['verdict_max_s']:.2f} s | {r['real_master_rule']} |"
        )
    for m in missed:
        print(f"not timed: {m}")
    doc = {
        "command": " ".join(["python", *sys.argv]),
        "runs": args.runs,
        "heartbeat_interval_s": DEFAULT_INTERVAL,
        "duration_s": round(time.monotonic() - started, 1),
        "oracles": rows,
        "samples": samples,
        "not_timed": missed,
    }
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time and stability of the whole catalog, one case after another and several at once, in the same run.

    python bench/catalog_runs.py --worker reference --runs 20 --modes serial,auto [--interval 1] [--out F.json]

``--worker`` takes what ``locust-conformance run`` takes; ``--interval`` is the heartbeat interval (``auto``: the
worker's own pace, measured once by the pace probe; a number: told to a worker that takes it). ``--modes``: a
comma-separated list of ``serial`` (``--jobs 1``), ``auto`` or a number of cases at once; each run does every
mode, one after the other (``serial`` only in the first run unless ``--serial-every-run``: it is the baseline the
verdicts of the others are compared with), so the figures come from the same machine in the same minutes. Prints one row per
(run, mode) and a summary table per mode: wall time, and how many runs had no FAILED or UNKNOWN and verdicts
identical to the serial run's; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.catalog import all_cases
from harness.pace import parse_interval, resolve
from harness.runner import AUTO, RunConfig, run_catalog
from harness.verdicts import Verdict


def _jobs(mode: str) -> int | str:
    return 1 if mode == "serial" else AUTO if mode == AUTO else int(mode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", default="reference")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="serial,auto", help="comma-separated: serial, auto, or a number of cases at once")
    parser.add_argument("--interval", default=None, help="heartbeat interval: seconds or auto (default: as 'run')")
    parser.add_argument("--serial-every-run", action="store_true", help="run the serial baseline in every run, not once")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        pace = resolve(args.worker, parse_interval(args.interval), 0.2, Path(tmp) / "pace-probe")
    print(f"{args.worker}: {pace.describe()}", flush=True)
    rows: list[dict[str, Any]] = []
    serial_verdicts: dict[str, str] | None = None
    for i in range(1, args.runs + 1):
        for mode in modes:
            if mode == "serial" and i > 1 and not args.serial_every_run:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                started = time.monotonic()
                config = RunConfig(args.worker, args.worker, pace.interval, pace=pace)
                run = run_catalog(all_cases(), config, Path(tmp), jobs=_jobs(mode))
                wall = time.monotonic() - started
            verdicts = {r.case.id: r.verdict.value for r in run.results}
            if mode == "serial" and serial_verdicts is None:
                serial_verdicts = verdicts
            counts = {k: v for k, v in run.counts().items() if v}
            bad = [f"{case}={v}" for case, v in verdicts.items() if v != Verdict.OK.value]
            reruns = sum(1 for r in run.results if r.rerun)
            same = serial_verdicts is None or verdicts == serial_verdicts
            row: dict[str, Any] = {"run": i, "mode": mode, "jobs_end": run.jobs, "wall_s": round(wall, 2)}
            row.update(cases=len(run.results), counts=counts, not_ok=bad, reruns=reruns, same_as_serial=same)
            rows.append(row)
            print(f"run {i:>2} {mode:>6}: {wall:6.1f} s  jobs {run.jobs}  {counts}  reruns {reruns}  {' '.join(bad)}", flush=True)
    head = "| worker | interval | mode | runs | wall min / median / max (s) | runs without FAILED/UNKNOWN | same as serial |"
    print(f"\n{head}")
    print("|---|---|---|---|---|---|---|")
    clean_all = True
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        walls = [r["wall_s"] for r in mine]
        clean = sum(1 for r in mine if not r["counts"].get("FAILED") and not r["counts"].get("UNKNOWN"))
        agreeing = sum(1 for r in mine if r["same_as_serial"])
        clean_all = clean_all and clean == len(mine)
        print(
            f"| {args.worker} | {pace.interval:g} s | {mode} | {len(mine)} "
            f"| {min(walls):.1f} / {statistics.median(walls):.1f} / {max(walls):.1f} "
            f"| {clean}/{len(mine)} | {agreeing}/{len(mine)} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"worker": args.worker, "interval": pace.interval, "pace": pace.to_json(), "modes": modes, "runs": rows}
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if clean_all else 1


if __name__ == "__main__":
    sys.exit(main())

"""Wall time and stability of the whole catalog: N consecutive full runs against one worker.

    python bench/catalog_runs.py --worker reference --runs 20 [--out bench/results/catalog-reference.json]

Prints one row per run (wall time, verdict counts) and a summary table next to the budget the project
holds itself to (60 s for the reference worker, 300 s for the real Locust worker); writes JSON.
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
from harness.runner import RunConfig, run_catalog
from harness.verdicts import Verdict

BUDGET_S = {"reference": 60.0, "locust": 300.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", default="reference")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            run = run_catalog(all_cases(), RunConfig(args.worker, args.worker), Path(tmp))
            wall = time.monotonic() - started
        counts = {k: v for k, v in run.counts().items() if v}
        bad = [f"{r.case.id}={r.verdict.value}" for r in run.results if r.verdict is not Verdict.OK]
        rows.append({"run": i, "wall_s": round(wall, 2), "cases": len(run.results), "counts": counts, "not_ok": bad})
        print(f"run {i:>2}: {wall:6.1f} s  {counts}  {' '.join(bad)}", flush=True)
    walls = [r["wall_s"] for r in rows]
    clean = sum(1 for r in rows if not r["counts"].get("FAILED") and not r["counts"].get("UNKNOWN"))
    budget = BUDGET_S.get(args.worker)
    print("\n| worker | runs | cases | wall min / median / max (s) | budget (s) | runs without FAILED/UNKNOWN |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.worker} | {len(rows)} | {rows[0]['cases']} "
        f"| {min(walls):.1f} / {statistics.median(walls):.1f} / {max(walls):.1f} "
        f"| {budget if budget else 'n/a'} | {clean}/{len(rows)} |"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"worker": args.worker, "budget_s": budget, "runs": rows}, indent=2) + "\n")
    return 0 if clean == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())

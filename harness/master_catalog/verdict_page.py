"""docs/master-verdicts.md: the master catalog's verdicts per master, each non-OK one explained (pure rendering).

An explanation names the case and the oracle it explains, and says which releases behave so and why (the release
notes and pull requests of ../shared/reference/locust-versions.md, checked against the real masters). A non-OK
verdict without one is printed as UNEXPLAINED, which the page's test refuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.master_catalog.cases import CASES
from harness.master_catalog.consequences import table_markdown
from harness.verdicts import Verdict

UNEXPLAINED = "UNEXPLAINED"
_LISTENER = "master.listener-alive"
EXPLANATIONS: dict[tuple[str, str], str] = {
    ("handshake/01-ack", "master.ack"): "Masters before 2.10 never ack (PR #2077 added the ack): Locust workers 2.10+ "
    "re-send client_ready every 5 s and exit after about 305 s (15 s in 2.10.0); workers of the master's own "
    "release do not wait.",
    ("handshake/01-ack", "master.ack-index.nil"): "2.10 acks with nil data; the worker index came in 2.11 (PR #2155).",
    ("heartbeat/01-replies", "master.heartbeat-reply"): "Masters reply to heartbeats from 2.19 (PR #2474). A 2.19+ "
    "worker only times out on a master that replied once, so under an older master it never notices the master died.",
    ("robustness/01-unknown-spawning-complete", _LISTENER): "2.0-2.46 look the sender up in their worker table: "
    "KeyError, and client_listener dies for good. 2.47 (PR #3516) warns and sends quit to the sender.",
    ("robustness/02-unknown-spawning", _LISTENER): "Before 2.15 an unknown sender's spawning is a KeyError that kills "
    "client_listener (#2302); 2.15 (PR #2309) warns and sends quit.",
    ("robustness/03-unknown-client-stopped", _LISTENER): "Before 2.10 an unknown sender's client_stopped is a KeyError "
    "that kills client_listener; 2.10 (#2102) warns and goes on.",
    ("robustness/04-client-ready-number", _LISTENER): "From 2.5 (PR #1926) the master compares client_ready data "
    "with its own version by slicing it (data[0:4]): a number raises TypeError and kills client_listener. Still so "
    "in 2.47. Every truthy value was accepted in 2.0-2.4.",
    ("robustness/05-not-msgpack", _LISTENER): "recv_from_client maps only msgpack's ExtraData and UnicodeDecodeError "
    "to a receive error; any other unpack error (here a 0xc1 byte) escapes and kills client_listener, in every "
    "release. One bad frame from anything that can reach the port stops the master.",
    ("robustness/06-trailing-bytes", "master.reconnect"): "Before 2.10 a receive error sends no reconnect: the master "
    "pauses 5 s (FALLBACK_INTERVAL) and rebinds its socket, so every worker reconnects. 2.13.1 only logged it. Our "
    "fake master's 2.0 and 2.8 profiles ignore the frame instead (the pause is not emulated).",
    ("robustness/06-trailing-bytes", "master.stall"): "Before 2.10 a receive error makes the master sleep "
    "FALLBACK_INTERVAL (5 s) in its listener while its heartbeat loop closes and rebinds the socket ('Reset connection "
    "to worker'): nothing is read meanwhile, and what was queued on the old socket is dropped with it. Its liveness "
    "ticks skip while the connection is broken, so no worker goes missing. Our fake master's 2.0 and 2.8 profiles do "
    "not emulate the pause.",
    ("robustness/06-trailing-bytes", _LISTENER): "Before 2.10 the rebind after a receive error can fail ('Socket bind "
    "failure: Address already in use': the old socket, closed with the default linger, has not let go of the port) "
    "and the master then retries "
    "every second, reading nothing, for longer than the case waits (30 s). Seen in one run while the wait was 15 s; "
    "in the 7 runs since with 30 s, 2.1.0 and 2.8.6 always read again after 5.0 s. This verdict and NON-STRICT "
    "master.stall are the same defect.",
    ("dispatch/01-users-split", "master.spawn-schema.deviation"): "Masters before 2.2 send spawns without parsed_options "
    "(PR #1841 added it): a Locust worker 2.2+ reads the key unconditionally and dies on such a spawn (KeyError); "
    "workers of the master's own release do not read it.",
    ("dispatch/03-quit-before-report", "master.redispatch"): "A gap in every release: a worker that quits after the "
    "dispatcher's last step but before the master has its spawning_complete (a worker whose users fail to start, "
    "say) keeps its users. The quit handler re-dispatches only when the state is RUNNING (the branch is marked "
    "'# TODO: Test this situation'); during the ramp's wait for reports (1 s from 2.7, 0.1 s before) it is SPAWNING, "
    "and the dispatcher, done, no longer rebalances. The users stay lost until something calls start() again (in "
    "2.47, another worker joining); 2.29+ still broadcasts spawning_complete with the full count. The case quits "
    "0.5 s after the spawn (a quit handled before the master's dispatch loop resumes would be rebalanced) and "
    "launches the master with a 10 s report wait (LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP, read by every 2.x "
    "release), so a loaded machine cannot make the quit miss it. Not run on the fake master.",
}


def explain(case_id: str, oracle: str) -> str:
    return EXPLANATIONS.get((case_id, oracle), UNEXPLAINED)


def render_page(docs: Sequence[dict[str, Any]], command: str) -> str:
    """The Markdown page for runs given as their results.json documents (one column each, in order)."""
    labels = [doc["run"]["label"] for doc in docs]
    by_case = [{c["id"]: c for c in doc["cases"]} for doc in docs]
    not_run = [{n["id"] for n in doc["not_run"]} for doc in docs]
    lines = [
        "# Master verdicts: the master catalog against Locust's masters and ours",
        "",
        f"Generated by `locust-conformance master-run {command} --verdict-page docs/master-verdicts.md`.",
        "Each case starts a fresh master and drives fake workers at Locust's real 1 s pace "
        "(`harness/master_catalog/`). `fake@P` is our fake master serving as profile P does; it runs no load test, so "
        "the dispatch and stats cases are not run on it (—).",
        "",
        "| case | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for case in CASES:
        cells = [
            results[case.id]["verdict"] if case.id in results else ("—" if case.id in skipped else "")
            for results, skipped in zip(by_case, not_run, strict=True)
        ]
        lines.append(f"| `{case.id}` | " + " | ".join(cells) + " |")
    lines += ["", "## Why each non-OK verdict", ""]
    seen: dict[tuple[str, str], list[str]] = {}
    for label, results in zip(labels, by_case, strict=True):
        for case in CASES:
            for finding in results.get(case.id, {}).get("findings", []):
                cell = f"{label} {finding['verdict']}"
                if finding["verdict"] != Verdict.OK.value and cell not in seen.setdefault((case.id, finding["oracle"]), []):
                    seen[(case.id, finding["oracle"])].append(cell)
    for (case_id, oracle), cells in sorted(seen.items(), key=lambda item: _order(item[0][0])):
        lines.append(f"- `{case_id}` / `{oracle}` ({', '.join(cells)}): {explain(case_id, oracle)}")
    lines += _measured(labels, by_case)
    lines += ["", "## How each master finding is graded (`harness/master_catalog/consequences.py`)", "", *table_markdown()]
    return "\n".join(lines) + "\n"


def _order(case_id: str) -> int:
    return next((i for i, case in enumerate(CASES) if case.id == case_id), len(CASES))


def _measured(labels: list[str], by_case: list[dict[str, dict[str, Any]]]) -> list[str]:
    lines: list[str] = []
    missing = [
        (label, results[c]["measurements"]["missing_after_s"])
        for label, results in zip(labels, by_case, strict=True)
        for c in results
        if "missing_after_s" in results[c].get("measurements", {})
    ]
    if missing:
        lines += [
            "",
            "## The missing rule, measured",
            "",
            "| master | trials | marked missing | after the last heartbeat (s) |",
            "|---|---|---|---|",
        ]
        for label, m in missing:
            span = f"{m['min']:.3f} - {m['max']:.3f}" if m["min"] is not None else "never"
            lines.append(f"| {label} | {m['trials']} | {m['declared']} | {span} |")
        rule = missing[0][1]["rule"]
        lines += ["", f"Locust's rule (locust-protocol.md 5.2): between {rule[0]:g} and {rule[1]:g} s."]
    swarms = [
        (label, results[c]["measurements"]["swarm"])
        for label, results in zip(labels, by_case, strict=True)
        for c in results
        if "swarm" in results[c].get("measurements", {})
    ]
    if swarms:
        lines += [
            "",
            "## Many workers at once (`load/01-many-workers`)",
            "",
            "| master | workers | registered | heartbeats | replies | reply p50 (ms) | reply p99 (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, m in swarms:
            cells = [m["workers"], m["registered"], m["heartbeats"], m["replies"], m["reply_p50_ms"], m["reply_p99_ms"]]
            lines.append(f"| {label} | " + " | ".join("—" if v is None else str(v) for v in cells) + " |")
    return lines


def unexplained(docs: Sequence[dict[str, Any]]) -> list[str]:
    """The non-OK findings no explanation covers (the page's test wants none)."""
    return [
        f"{doc['run']['label']} {case['id']} {finding['oracle']} {finding['verdict']}"
        for doc in docs
        for case in doc["cases"]
        for finding in case["findings"]
        if finding["verdict"] != Verdict.OK.value and explain(case["id"], finding["oracle"]) == UNEXPLAINED
    ]


def main(argv: list[str] | None = None) -> int:
    """Render the page again from report folders (``python -m harness.master_catalog.verdict_page``)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="master-run report folders (each holds results.json)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    docs = [json.loads((folder / "results.json").read_text()) for folder in args.folders]
    command = " ".join(f"--master {doc['run']['worker']}" for doc in docs)
    args.out.write_text(render_page(docs, command), "utf-8")
    missing = unexplained(docs)
    for line in missing:
        print(f"unexplained: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

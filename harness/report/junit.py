"""``junit.xml``: one test case per catalog case, the evidence in the failure text, so any CI shows it.

FAILED is a failure, UNKNOWN and SCENARIO-ERROR errors (nothing could be said about the worker: never a pass),
INFORMATIONAL and UNIMPLEMENTED are skipped with their reason, NON-STRICT passes with its finding in ``system-out``
(as the pytest plugin does without ``--lc-strict``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report.model import LoadedRun
from harness.verdicts import Verdict, rank

SKIPPED = ("INFORMATIONAL", "UNIMPLEMENTED")
ERRORS = {  # not judged: the reason given before the first finding
    "UNKNOWN": "the harness could not judge this case: ",
    "SCENARIO-ERROR": "the case asked the harness for something impossible: ",
}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry (NUL, terminal escapes...) shown as ``\\xNN``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def evidence_text(case: dict[str, Any]) -> str:
    """The findings of a case, worst first, as plain text with expected vs observed, plus where its files are."""
    findings = sorted(case["findings"], key=lambda f: -rank(Verdict(f["verdict"])))
    lines = [f"{case['id']}: {case['title']}", f"expectation: {case['expectation']}", ""]
    for f in findings:
        if f["verdict"] == "OK":
            continue
        at = f" at t={f['at']:.3f}s" if "at" in f else ""
        lines += [f"{f['verdict']} [{f['oracle']}]{at}", f"  expected: {f['expected']}", f"  observed: {f['observed']}"]
    gap = case.get("max_heartbeat_gap_s")
    lines += [
        "",
        f"worker: {case['command'] or '(not started)'}; {case['worker_exit_text']}",
        f"max heartbeat gap: {'n/a' if gap is None else f'{gap:.3f} s'}; duration {case['duration_s']:.2f} s",
        f"evidence: {case['dir']}/ in the report folder (trace.txt, trace.jsonl, worker.log); written as {case['artifacts']}",
    ]
    return "\n".join(lines)


def _first_bad(case: dict[str, Any]) -> str:
    bad = [f for f in case["findings"] if f["verdict"] == case["verdict"]]
    if not bad:
        return str(case["verdict"])
    f = bad[0]
    return f"[{f['oracle']}] expected {f['expected']}; observed {f['observed']}"[:500]


def junit_suite(run: LoadedRun) -> ET.Element:
    """A ``<testsuite>`` for one run."""
    cases = run.cases
    not_run: list[dict[str, Any]] = run.doc.get("not_run", [])
    count = {v: sum(1 for c in cases if c["verdict"] == v) for v in ("FAILED", *ERRORS, *SKIPPED)}
    suite = ET.Element(
        "testsuite",
        name=f"locust-conformance[{run.label}]",
        tests=str(len(cases) + len(not_run)),
        failures=str(count["FAILED"]),
        errors=str(sum(count[v] for v in ERRORS)),
        skipped=str(count["INFORMATIONAL"] + count["UNIMPLEMENTED"] + len(not_run)),
        time=f"{float(run.meta['duration_s']):.3f}",
        timestamp=str(run.meta["started_at"]),
        hostname=str(run.meta.get("hostname", "")),
    )
    props = ET.SubElement(suite, "properties")
    for key in ("worker", "heartbeat_interval", "user_class", "harness_version", "locust_version", "python", "platform"):
        ET.SubElement(props, "property", name=key, value=str(run.meta.get(key)))
    for case in cases:
        element = ET.SubElement(
            suite,
            "testcase",
            classname=f"locust-conformance[{run.label}].{case['category']}",
            name=case["id"],
            time=f"{case['duration_s']:.3f}",
        )
        verdict = case["verdict"]
        text = evidence_text(case)
        if verdict == "FAILED":
            ET.SubElement(element, "failure", message=_first_bad(case), type="FAILED").text = text
        elif verdict in ERRORS:
            ET.SubElement(element, "error", message=ERRORS[verdict] + _first_bad(case), type=verdict).text = text
        elif verdict in SKIPPED:
            ET.SubElement(element, "skipped", message=f"{verdict}: {_first_bad(case)}").text = text
        else:
            ET.SubElement(element, "system-out").text = text
    for left in not_run:  # left out by the run: skipped, never passed
        element = ET.SubElement(
            suite, "testcase", classname=f"locust-conformance[{run.label}].{left['category']}", name=left["id"], time="0.000"
        )
        ET.SubElement(element, "skipped", message=f"not run: {left['reason']}")
    return suite


def write_junit(runs: list[LoadedRun], out: Path) -> Path:
    """Write ``out`` (``junit.xml``) with one ``<testsuite>`` per run."""
    root = ET.Element("testsuites", name="locust-conformance")
    for run in runs:
        root.append(junit_suite(run))
    for element in root.iter():
        element.attrib = {k: xml_safe(v) for k, v in element.attrib.items()}
        if element.text:
            element.text = xml_safe(element.text)
    ET.indent(root)
    out.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return out

"""junit.xml: case ids as test names, the verdicts mapped as the pytest plugin maps them, the evidence in the text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report import load_run
from harness.report.junit import write_junit, xml_safe


def _cases(folder: Path) -> dict[str, ET.Element]:
    root = ET.parse(folder / "junit.xml").getroot()
    assert root.tag == "testsuites"
    return {c.get("name", ""): c for c in root.iter("testcase")}


def test_case_ids_are_test_names_and_verdicts_map(reference_run: Path, locust_run: Path, broken_run: Path) -> None:
    ids = [c["id"] for c in json.loads((reference_run / "results.json").read_text())["cases"]]
    ref = _cases(reference_run)
    assert list(ref) == ids
    assert all(len(c) == 1 and c[0].tag == "system-out" for c in ref.values()), "OK cases pass"
    suite = ET.parse(locust_run / "junit.xml").getroot()[0]
    assert suite.get("name") == "locust-conformance[locust]" and suite.get("tests") == str(len(ids))
    garbage = _cases(locust_run)["malformed/01-garbage"]
    failure = garbage.find("failure")
    assert failure is not None and suite.get("failures") == "1"
    assert failure.get("classname") is None and garbage.get("classname") == "locust-conformance[locust].malformed"
    text = failure.text or ""
    assert "expected: " in text and "observed: " in text and "msgpack" in text
    assert "cases/malformed__01-garbage/ in the report folder" in text, "the failure text says where the evidence is"
    error = _cases(broken_run)["handshake/01-first-message"].find("error")
    assert error is not None and "could not judge" in (error.get("message") or "")


def test_text_a_worker_printed_cannot_break_the_xml(reference_run: Path, tmp_path: Path) -> None:
    doc = json.loads((reference_run / "results.json").read_text())
    doc["summary"][doc["cases"][0]["verdict"]] -= 1
    doc["summary"]["FAILED"] += 1
    doc["cases"][0]["verdict"] = "FAILED"
    doc["cases"][0]["findings"].append(
        {"oracle": "socket.output", "verdict": "FAILED", "expected": "no <crash> & no \x00", "observed": "\x1b[31mboom\x07 é ☃"}
    )
    (tmp_path / "results.json").write_text(json.dumps(doc))
    write_junit([load_run(tmp_path)], tmp_path / "junit.xml")
    failure = next(iter(_cases(tmp_path).values())).find("failure")
    assert failure is not None
    assert "\\x1b[31mboom\\x07 é ☃" in (failure.text or "") and "no <crash> & no \\x00" in (failure.text or "")
    assert xml_safe("a\tb\nc") == "a\tb\nc"


def test_cases_not_run_are_skipped_never_passed(reference_run: Path, tmp_path: Path) -> None:
    """A case the run left out (too long at the worker's pace, or not selected) is a skip saying why, a grey "not
    run" cell in the matrix, and in compare.json NOT-RUN; a stuck worker's stack dump is on its case page."""
    import shutil

    from harness.report import compare_runs, write_run_report

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    doc = json.loads((run / "results.json").read_text())
    doc["not_run"] = [
        {
            "id": "reconnect/03-master-silence-timeout",
            "category": "reconnect",
            "title": "A silent master is given up after the timeout",
            "reason": "would take up to 100 s at the worker's timing (--max-case-seconds 30)",
            "estimated_s": 100.0,
        }
    ]
    (run / "results.json").write_text(json.dumps(doc))
    first = run / doc["cases"][0]["dir"]
    (first / "stack.txt").write_text('JVM pid 42 (jcmd Thread.print)\n"spawn-handler" WAITING in applySpawn\n')
    write_run_report(run)
    skipped = _cases(run)["reconnect/03-master-silence-timeout"].find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("not run: would take up to 100 s")
    index = (run / "index.html").read_text()
    assert 'class="v v-none not-run" title="not run: would take up to 100 s' in index
    page = (first / "index.html").read_text()
    assert 'id="stack"' in page and "spawn-handler" in page
    compare_runs([run], tmp_path / "both")
    matrix = json.loads((tmp_path / "both" / "compare.json").read_text())
    assert matrix["cases"]["reconnect/03-master-silence-timeout"] == {"reference": "NOT-RUN"}


def test_a_scenario_error_is_an_error_never_a_pass(reference_run: Path, tmp_path: Path) -> None:
    """SCENARIO-ERROR (the scenario asked for something impossible) is a junit <error> of its own type, counted with the
    errors, coloured and explained in the HTML legend; it ranks below a FAILED finding of the same case."""
    import shutil

    from harness.consequences import judged
    from harness.report import write_run_report

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    doc = json.loads((run / "results.json").read_text())
    first = doc["cases"][0]
    doc["summary"][first["verdict"]] -= 1
    doc["summary"]["SCENARIO-ERROR"] += 1
    first["verdict"] = "SCENARIO-ERROR"
    first["findings"].append(judged("script", "a script the harness can run", "no").to_json())
    (run / "results.json").write_text(json.dumps(doc))
    write_run_report(run)
    suite = ET.parse(run / "junit.xml").getroot()[0]
    error = _cases(run)[first["id"]].find("error")
    assert error is not None and error.get("type") == "SCENARIO-ERROR" and suite.get("errors") == "1"
    assert (error.get("message") or "").endswith("[script] expected a script the harness can run; observed no")
    assert "SCENARIO-ERROR [script]" in (error.text or "")
    index = (run / "index.html").read_text()
    assert '<span class="badge v-SCENARIO-ERROR">SCENARIO-ERROR</span>' in index and ".v-SCENARIO-ERROR {" in index
    assert "SCENARIO-ERROR" in (run / first["dir"] / "index.html").read_text()

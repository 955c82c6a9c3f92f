"""``locust-conformance mutants``: the matrix over real worker processes, passing and failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.mutation import CLEAN, MUTANTS, Mutant, run_matrix
from harness.verdicts import Verdict

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_matrix_command_catches_two_defects_and_not_the_clean_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mutants", "--runs", "1", "--defects", "lock-across-recv,no-final-stats", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["ok"] is True and data["problems"] == []
    cells = {(c["subject"], c["case"]): c for c in data["cells"]}
    assert set(cells) == {
        (CLEAN, "heartbeat/01-idle-cadence"),
        (CLEAN, "stats/05-final-on-quit"),
        ("lock-across-recv", "heartbeat/01-idle-cadence"),
        ("no-final-stats", "stats/05-final-on-quit"),
    }
    assert cells[("lock-across-recv", "heartbeat/01-idle-cadence")]["verdicts"] == {"FAILED": 1}
    assert cells[("no-final-stats", "stats/05-final-on-quit")]["verdicts"] == {"NON-STRICT": 1}
    assert all(cells[(CLEAN, c)]["caught"] == 0 for _, c in cells)
    lock = cells[("lock-across-recv", "heartbeat/01-idle-cadence")]
    assert 0 < lock["detection_s"]["max"] <= lock["verdict_s"]["max"]
    assert "heartbeat.missing" in lock["evidence"]
    for artifact in lock["artifacts"]:
        assert (tmp_path / artifact / "trace.jsonl").is_file() and (tmp_path / artifact / "worker.log").is_file()
    assert "| lock-across-recv | heartbeat/01-idle-cadence | 1/1 | FAILED 1 |" in out
    assert "OK in" in out


def test_a_defect_its_case_cannot_catch_fails_the_matrix(tmp_path: Path) -> None:
    """The matrix is not a rubber stamp: a defect paired with a case blind to it is reported as missed."""
    blind = Mutant("no-final-stats", ("heartbeat/01-idle-cadence",), Verdict.NON_STRICT, ("stats.final",))
    matrix = run_matrix([blind], runs=1, report=tmp_path)
    assert matrix.problems() == ["no-final-stats caught by heartbeat/01-idle-cadence in only 0 of 1 runs (needs 95%)"]
    assert matrix.cells[("no-final-stats", "heartbeat/01-idle-cadence")].missed_evidence.startswith("OK")
    assert list((tmp_path / "artifacts" / "no-final-stats").rglob("trace.jsonl")), "a miss keeps its evidence"


def test_list_and_bad_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mutants", "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == len(MUTANTS) == 23
    assert listing[0].split()[:3] == ["shared-socket", "storms/02-heartbeat-flood", "FAILED"]
    assert main(["mutants", "--defects", "no-such-bug"]) == 3
    assert "no such defect no-such-bug" in capsys.readouterr().err
    assert main(["mutants", "--runs", "0"]) == 3
    assert main(["mutants", "--defects", "lock-across-recv", "--cases", "spawn"]) == 3
    assert "leave out the intended case of lock-across-recv" in capsys.readouterr().err
    assert main(["mutants", "--defects", "lock-across-recv", "--min-rate", "95"]) == 3

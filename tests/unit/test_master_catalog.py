"""The master catalog's plumbing without a master: commands, selection, planning, the verdict page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.master_catalog.base import MasterCase
from harness.master_catalog.cases import CASES
from harness.master_catalog.cli import select_master_cases
from harness.master_catalog.masters import RUN, Launch, MasterCommand
from harness.master_catalog.run import MasterCaseResult, MasterRunResult, plan
from harness.master_catalog.verdict_page import UNEXPLAINED, explain, render_page, unexplained
from harness.verdicts import Finding, Verdict


def test_a_release_runs_a_load_test_the_fake_master_does_not() -> None:
    assert RUN in MasterCommand("locust@2.15.1").check().capabilities
    fake = MasterCommand("fake@2.15").check()
    assert fake.capabilities == frozenset() and fake.label == "fake@2.15"
    run, skipped = plan(list(CASES), fake)
    assert {c.id for c in run} == {c.id for c in CASES if not c.needs}
    assert skipped and all("starts no load test" in s.reason for s in skipped)


def test_a_template_is_checked_and_filled() -> None:
    command = MasterCommand("mymaster --bind {host}:{port} --users {users} --workers {workers} -t {run_time}").check()
    assert RUN in command.capabilities and command.label == "custom"
    text = command.render(5557, Launch(workers=2, users=4, run_time=8), Path("/tmp/x"))
    assert text == "mymaster --bind 127.0.0.1:5557 --users 4 --workers 2 -t 8s"
    assert MasterCommand("mymaster --port {port}").check().capabilities == frozenset()


@pytest.mark.parametrize(
    "text, says",
    [
        ("mymaster", "{port}"),
        ("mymaster {port} {nonsense}", "unknown placeholders"),
        ("fake@1.9", "unknown master profile"),
        ("locust@2.15", "locust@MAJOR.MINOR.PATCH"),
    ],
)
def test_a_master_that_cannot_work_is_a_usage_error(text: str, says: str) -> None:
    with pytest.raises(ScenarioError, match=says.replace("{", r"\{").replace("}", r"\}")):
        MasterCommand(text).check()


def test_the_real_master_is_started_headless_on_its_port_with_the_launch(tmp_path: Path) -> None:
    # 2.47.0 is this environment's own Locust: rendering it installs nothing
    text = MasterCommand("locust@2.47.0").render(6000, Launch(workers=2, users=4, rate=100, run_time=8), tmp_path / "stats")
    assert "-m locust" in text and " --master " in text and "--headless" in text
    for part in ("--master-bind-host 127.0.0.1", "--master-bind-port 6000", "--expect-workers 2", "-u 4", "-r 100", "-t 8s"):
        assert part in text
    assert f"--csv {tmp_path / 'stats'}" in text and "peers/locustfile.py" in text
    assert " -t " not in MasterCommand("locust@2.47.0").render(6000, Launch(), tmp_path / "stats")
    fake = MasterCommand("fake@2.8").render(6000, Launch(), tmp_path / "stats")
    assert "master --serve" in fake and "--port 6000" in fake and "--master-profile 2.8" in fake


def test_cases_are_chosen_by_id_category_or_glob() -> None:
    assert [c.id for c in select_master_cases("handshake/01-ack")] == ["handshake/01-ack"]
    assert {c.category for c in select_master_cases("robustness")} == {"robustness"}
    assert len(select_master_cases("robustness/0*,robustness")) == len(select_master_cases("robustness"))
    assert select_master_cases("") == list(CASES)
    with pytest.raises(ScenarioError, match="matches no master case"):
        select_master_cases("nothing/here")


def test_case_ids_are_unique_and_categorised() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(c.id.split("/")[0] == c.category for c in CASES)


def _run(label: str, verdicts: dict[str, tuple[Verdict, str]]) -> MasterRunResult:
    run = MasterRunResult(MasterCommand(label), label)
    by_id = {c.id: c for c in CASES}
    for case_id, (verdict, oracle) in verdicts.items():
        finding = Finding(oracle, verdict, "x", "y")
        run.results.append(MasterCaseResult(by_id[case_id], verdict, [finding] if verdict is not Verdict.OK else [], 1.0))
    return run


def test_the_page_explains_each_non_ok_verdict_and_flags_the_rest() -> None:
    old = _run("locust@2.8.6", {"robustness/03-unknown-client-stopped": (Verdict.FAILED, "master.listener-alive")})
    new = _run("locust@2.47.0", {"robustness/03-unknown-client-stopped": (Verdict.OK, "")})
    page = render_page([old.to_json(), new.to_json()], "--master locust@2.8.6 --master locust@2.47.0")
    assert "| `robustness/03-unknown-client-stopped` | FAILED | OK |" in page
    assert "2.10 (#2102)" in page and UNEXPLAINED not in page and unexplained([old.to_json(), new.to_json()]) == []
    odd = _run("locust@2.47.0", {"handshake/01-ack": (Verdict.FAILED, "master.listener-alive")})
    assert unexplained([odd.to_json()]) == ["locust@2.47.0 handshake/01-ack master.listener-alive FAILED"]
    assert UNEXPLAINED in render_page([odd.to_json()], "")


def test_every_explanation_names_a_case_of_the_catalog() -> None:
    from harness.master_catalog.verdict_page import EXPLANATIONS

    ids = {c.id for c in CASES}
    assert {case_id for case_id, _ in EXPLANATIONS} <= ids
    assert explain("handshake/01-ack", "master.ack") != UNEXPLAINED


def test_a_case_serialises_like_a_worker_case() -> None:
    case: MasterCase = CASES[0]
    data = case.to_json()
    assert {"id", "category", "kind", "title", "expectation", "spec", "needs"} <= set(data)


ROOT = Path(__file__).resolve().parents[2]


def _page_table() -> dict[str, dict[str, str]]:
    """docs/master-verdicts.md's matrix: master -> case -> verdict."""
    rows = [line for line in (ROOT / "docs" / "master-verdicts.md").read_text().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")][1:]
    table: dict[str, dict[str, str]] = {master: {} for master in header}
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if not cells[0].startswith("`") or len(cells) != len(header) + 1:
            continue  # another table (the missing rule's)
        for master, verdict in zip(header, cells[1:], strict=True):
            table[master][cells[0].strip("`")] = verdict
    return table


def test_the_committed_verdict_page_covers_the_catalog_explains_everything_and_agrees_with_the_expectations() -> None:
    page = (ROOT / "docs" / "master-verdicts.md").read_text()
    assert UNEXPLAINED not in page
    table = _page_table()
    for master in ("locust@2.8.6", "locust@2.15.1", "locust@2.20.0", "locust@2.47.0", "fake@2.15", "fake@2.47"):
        assert set(table[master]) == {c.id for c in CASES}, master
    expected = json.loads((ROOT / "docs" / "master-expected.json").read_text())
    for master, verdicts in expected.items():
        if not master.startswith("_"):
            assert {case: table[master][case] for case in verdicts} == verdicts, master


def _named_oracles() -> dict[str, list[str]]:
    """Oracle names handed to ctx.finding / ctx.fail / graded in harness/master_catalog, with where."""
    import ast

    named: dict[str, list[str]] = {}
    for path in (ROOT / "harness" / "master_catalog").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name not in ("finding", "fail", "graded"):
                continue
            first = node.args[0]
            if isinstance(first, ast.Name) and first.id == "oracle":
                continue  # the graders passing their own parameter on
            values = (
                [first] if isinstance(first, ast.Constant) else [first.body, first.orelse] if isinstance(first, ast.IfExp) else []
            )
            assert values, f"{path.name}:{node.lineno}: an oracle name that is not a literal"
            for value in values:
                assert isinstance(value, ast.Constant) and isinstance(value.value, str)
                named.setdefault(value.value, []).append(f"{path.name}:{node.lineno}")
    return named


def test_every_master_finding_is_graded_by_the_table_and_every_rule_is_used() -> None:
    from harness.master_catalog.consequences import RULES

    named = _named_oracles()
    assert {name: where for name, where in named.items() if name not in RULES} == {}
    assert set(RULES) - set(named) == set()


def test_the_table_grades_and_says_what_it_does_to_the_workers() -> None:
    from harness.master_catalog.consequences import RULES, graded

    finding = graded("master.listener-alive", "e", "o", 1.5)
    assert (
        finding.verdict is Verdict.FAILED and finding.consequence == RULES["master.listener-alive"].effect and finding.at == 1.5
    )
    assert graded("master.ack", "e", "o").verdict is Verdict.UNIMPLEMENTED
    assert graded("harness.case", "e", "o").verdict is Verdict.UNKNOWN
    with pytest.raises(KeyError):
        graded("master.nonsense", "e", "o")


def test_every_explanation_is_of_an_oracle_the_table_has() -> None:
    from harness.master_catalog.consequences import RULES
    from harness.master_catalog.verdict_page import EXPLANATIONS

    assert {oracle for _, oracle in EXPLANATIONS} <= set(RULES)

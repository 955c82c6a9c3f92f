"""The repro script ``explore`` writes is valid Python with the schedule embedded exactly."""

from __future__ import annotations

import ast

from harness.explore import Example, Exploration, repro_script
from harness.schedule import Schedule, Step
from harness.verdicts import Finding, Verdict


def test_the_script_embeds_the_schedule_and_says_what_failed() -> None:
    schedule = Schedule((Step("quiet", 4.5), Step("storm", 1, threads=2, rate=500.0, mix="mixed")), quit_at_end=True)
    failure = Finding("heartbeat.missing", Verdict.FAILED, "a heartbeat every 0.4 s", "marked missing", 0.7)
    example = Example(5, schedule, Verdict.FAILED, 5.2, 1.1, [failure], "shrink")
    exploration = Exploration("my worker {port}", 42, 50, 0.1, reproduced=4, reproduce_runs=5, started_at="2026-11-27T04:00")
    text = repro_script(example, exploration)
    tree = ast.parse(text)
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SCHEDULE"]
    assert Schedule.from_dict(ast.literal_eval(assign.value)) == schedule
    doc = ast.get_docstring(tree) or ""
    assert "seed 42" in doc and "Reproduced 4 of 5" in doc and "heartbeat.missing" in doc
    assert "quiet for 4.5 · storm mixed 2x500/s for 1 · quit" in doc


def test_backslashes_and_quotes_in_the_evidence_cannot_break_the_script() -> None:
    failure = Finding("socket.output", Verdict.FAILED, "no crash", 'output: C:\\Nope \\u12 """ end', 0.1)
    example = Example(1, Schedule(), Verdict.FAILED, None, 1.0, [failure], "generate")
    exploration = Exploration('java -jar "w.jar" --port {port} \\N', 1, 5, 0.1)
    tree = ast.parse(repro_script(example, exploration))
    assert "no crash" in (ast.get_docstring(tree) or "")


def test_the_script_replays_under_the_master_profile_it_was_found_under() -> None:
    example = Example(1, Schedule(), Verdict.FAILED, None, 1.0, [], "generate")
    exploration = Exploration("reference", 1, 5, 0.1, master_profile="2.15")
    calls = [n for n in ast.walk(ast.parse(repro_script(example, exploration))) if isinstance(n, ast.Call)]
    replay = next(c for c in calls if getattr(c.func, "id", "") == "replay_main")
    assert {k.arg: ast.literal_eval(k.value) for k in replay.keywords}["master_profile"] == "2.15"

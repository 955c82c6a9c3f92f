"""A failure of ours is UNKNOWN, never a pass and never the worker's fault: a case that asks for the impossible, a
harness fault and a plain bug in a case body, each run against the clean reference worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.catalog.base import Case, CaseContext
from harness.errors import HarnessFault, ScenarioError
from harness.mutation import command_for
from harness.runner import RunConfig, run_case
from harness.verdicts import Verdict

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def make_case(body: Callable[[CaseContext], None]) -> Case:
    return Case("test/harness-failure", "handshake", "a case of the test", "nothing", "-", body, budget=10)


def impossible(ctx: CaseContext) -> None:
    ctx.handshake()
    raise ScenarioError("the case asked for a spawn of -1 users")


def faulty(ctx: CaseContext) -> None:
    ctx.handshake()
    raise HarnessFault("our socket thread died")


def buggy(ctx: CaseContext) -> None:
    ctx.handshake()
    raise KeyError("a bug of ours")


@pytest.mark.parametrize(
    ("body", "oracle", "observed"),
    [
        (impossible, "harness.case", "the case asked for a spawn of -1 users"),
        (faulty, "harness", "our socket thread died"),
        (buggy, "harness.crash", "KeyError('a bug of ours')"),
    ],
    ids=["scenario-error", "harness-fault", "bug"],
)
def test_a_failure_of_ours_is_unknown_and_says_so(
    body: Callable[[CaseContext], None], oracle: str, observed: str, tmp_path: Path
) -> None:
    result = run_case(make_case(body), RunConfig(command_for(None), "clean"), tmp_path)
    assert result.verdict is Verdict.UNKNOWN, result.findings
    [ours] = [f for f in result.findings if f.verdict is Verdict.UNKNOWN]
    assert ours.oracle == oracle and ours.observed.startswith(observed), ours
    # the worker did nothing wrong: no other finding blames it
    assert all(f.oracle.startswith("harness") for f in result.findings if f.verdict is not Verdict.OK), result.findings

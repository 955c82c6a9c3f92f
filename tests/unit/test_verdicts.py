"""Tests of harness.verdicts: the graded scale, its merge order, and findings as text and JSON."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.verdicts import MEANINGS, NOT_JUDGED, Finding, Verdict, judged_exit_code, rank, worst

# Lowest to highest: what worst() must pick from any mix.
ORDER = [
    Verdict.OK,
    Verdict.INFORMATIONAL,
    Verdict.NON_STRICT,
    Verdict.UNIMPLEMENTED,
    Verdict.SCENARIO_ERROR,
    Verdict.UNKNOWN,
    Verdict.FAILED,
]
PASSING = [Verdict.OK, Verdict.INFORMATIONAL, Verdict.NON_STRICT, Verdict.UNIMPLEMENTED]  # exit 0, never fail a test


# --------------------------------------------------------------------------------------------
# Verdict and worst()
# --------------------------------------------------------------------------------------------


def test_order_lists_every_verdict_once() -> None:
    """Keeps ORDER honest if a verdict is added."""
    assert sorted(ORDER) == sorted(Verdict)
    assert len(set(ORDER)) == len(ORDER)


def test_verdict_values_are_the_report_spellings() -> None:
    assert [v.value for v in ORDER] == [
        "OK",
        "INFORMATIONAL",
        "NON-STRICT",
        "UNIMPLEMENTED",
        "SCENARIO-ERROR",
        "UNKNOWN",
        "FAILED",
    ]
    assert Verdict("NON-STRICT") is Verdict.NON_STRICT
    assert Verdict("SCENARIO-ERROR") is Verdict.SCENARIO_ERROR
    assert Verdict.FAILED == "FAILED"  # a StrEnum: compares and serialises as its value


def test_worst_of_nothing_is_ok() -> None:
    assert worst([]) is Verdict.OK
    assert worst(iter(())) is Verdict.OK


@pytest.mark.parametrize("verdict", ORDER)
def test_worst_of_one_is_itself(verdict: Verdict) -> None:
    assert worst([verdict]) is verdict


@pytest.mark.parametrize(("lower", "higher"), list(itertools.combinations(ORDER, 2)))
def test_worst_picks_the_higher_of_any_pair_in_either_order(lower: Verdict, higher: Verdict) -> None:
    assert worst([lower, higher]) is higher
    assert worst([higher, lower]) is higher
    assert worst([lower, higher, lower]) is higher


def test_failed_beats_unknown() -> None:
    """A FAILED backed by evidence stands even if the harness failed later in the same case."""
    assert worst([Verdict.UNKNOWN, Verdict.FAILED, Verdict.OK]) is Verdict.FAILED


def test_unknown_is_never_masked_by_a_pass() -> None:
    assert worst([Verdict.OK, Verdict.INFORMATIONAL, Verdict.NON_STRICT, Verdict.UNIMPLEMENTED, Verdict.UNKNOWN]) is (
        Verdict.UNKNOWN
    )


@pytest.mark.parametrize("passing", PASSING)
def test_a_scenario_error_is_never_masked_by_a_pass(passing: Verdict) -> None:
    """The script stopped short: what it judged is incomplete, so no passing verdict hides that."""
    assert worst([passing, Verdict.SCENARIO_ERROR, passing]) is Verdict.SCENARIO_ERROR


def test_a_scenario_error_never_hides_a_failure_nor_a_harness_fault() -> None:
    """FAILED with evidence stands; a harness that failed cannot be trusted to say the script was wrong."""
    assert worst([Verdict.FAILED, Verdict.SCENARIO_ERROR]) is Verdict.FAILED
    assert worst([Verdict.SCENARIO_ERROR, Verdict.UNKNOWN]) is Verdict.UNKNOWN
    assert rank(Verdict.UNIMPLEMENTED) < rank(Verdict.SCENARIO_ERROR) < rank(Verdict.UNKNOWN) < rank(Verdict.FAILED)


def test_not_judged_is_what_says_nothing_about_the_worker() -> None:
    assert NOT_JUDGED == {Verdict.UNKNOWN, Verdict.SCENARIO_ERROR}
    assert all(rank(v) > rank(p) for v in NOT_JUDGED for p in PASSING)


def test_every_verdict_has_a_meaning_listed_worst_first() -> None:
    assert list(MEANINGS) == ORDER[::-1]
    assert all(MEANINGS[v] for v in Verdict)


def test_peeling_off_the_top_walks_down_the_scale() -> None:
    remaining = list(ORDER)
    while remaining:
        assert worst(remaining) is remaining[-1]
        remaining.pop()
    assert worst(remaining) is Verdict.OK


def test_worst_accepts_a_generator() -> None:
    findings = [Finding("a", Verdict.NON_STRICT, "x", "y"), Finding("b", Verdict.INFORMATIONAL, "x", "y")]
    assert worst(f.verdict for f in findings) is Verdict.NON_STRICT


@given(st.lists(st.sampled_from(ORDER)))
def test_worst_is_the_maximum_by_rank(verdicts: list[Verdict]) -> None:
    result = worst(verdicts)
    assert result == (max(verdicts, key=ORDER.index) if verdicts else Verdict.OK)
    assert all(ORDER.index(v) <= ORDER.index(result) for v in verdicts)


# --------------------------------------------------------------------------------------------
# Finding
# --------------------------------------------------------------------------------------------


def test_finding_str_with_a_moment() -> None:
    f = Finding("heartbeat.gap", Verdict.NON_STRICT, "gaps of at most 1.500 s", "a 1.600 s gap", 12.34567)
    assert str(f) == "NON-STRICT [heartbeat.gap] at t=12.346s: expected gaps of at most 1.500 s; observed a 1.600 s gap"


def test_finding_str_without_a_moment() -> None:
    f = Finding("socket.signal", Verdict.FAILED, "no signal", "killed by signal 6")
    assert str(f) == "FAILED [socket.signal]: expected no signal; observed killed by signal 6"
    assert " at t=" not in str(f)


def test_finding_str_at_zero_still_names_the_moment() -> None:
    assert " at t=0.000s:" in str(Finding("order.first", Verdict.FAILED, "client_ready", "heartbeat first", 0.0))


def test_finding_to_json_with_a_moment() -> None:
    f = Finding("progress.stop", Verdict.FAILED, "client_stopped within 4.00 s of stop", "no answer", 6.123456789)
    assert f.to_json() == {
        "oracle": "progress.stop",
        "verdict": "FAILED",
        "expected": "client_stopped within 4.00 s of stop",
        "observed": "no answer",
        "at": 6.1235,
    }


def test_finding_to_json_without_a_moment_has_no_at_key() -> None:
    out = Finding("shutdown.exit", Verdict.FAILED, "exit", "still running").to_json()
    assert "at" not in out
    assert set(out) == {"oracle", "verdict", "expected", "observed"}


def test_finding_to_json_keeps_a_zero_moment() -> None:
    assert Finding("order.first", Verdict.FAILED, "e", "o", 0.0).to_json()["at"] == 0.0


@pytest.mark.parametrize("verdict", ORDER)
def test_finding_to_json_is_plain_json(verdict: Verdict) -> None:
    out = Finding("x.y", verdict, "expected 'quoted' \"text\"", "observed\nmultiline", 1.0).to_json()
    assert type(out["verdict"]) is str
    assert out["verdict"] == verdict.value
    assert json.loads(json.dumps(out)) == out


def test_finding_is_frozen_and_hashable() -> None:
    f = Finding("a", Verdict.OK, "e", "o")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.verdict = Verdict.FAILED  # type: ignore[misc]
    assert f == Finding("a", Verdict.OK, "e", "o")
    assert len({f, Finding("a", Verdict.OK, "e", "o")}) == 1


def test_a_judging_commands_exit_code_never_passes_what_it_could_not_judge() -> None:
    assert judged_exit_code([Verdict.OK, Verdict.NON_STRICT, Verdict.INFORMATIONAL, Verdict.UNIMPLEMENTED]) == 0
    assert judged_exit_code([Verdict.OK, Verdict.FAILED, Verdict.UNKNOWN]) == 1
    assert judged_exit_code([Verdict.OK, Verdict.UNKNOWN]) == 2
    assert judged_exit_code([Verdict.SCENARIO_ERROR]) == 2
    assert judged_exit_code([]) == 2  # nothing judged is no pass

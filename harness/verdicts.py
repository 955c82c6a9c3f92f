"""Graded verdicts (Autobahn's scale plus Jepsen's UNKNOWN) and the findings that justify them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Verdict(enum.StrEnum):
    """How a case or a script ended, declared in merge order: ``worst`` keeps the last one present.

    UNKNOWN and SCENARIO-ERROR say nothing about the worker (``NOT_JUDGED``): neither is ever a pass.
    """

    OK = "OK"
    INFORMATIONAL = "INFORMATIONAL"  # differs from Locust's own peer in a way its master accepts
    NON_STRICT = "NON-STRICT"  # works with a real master, but outside the tolerance (e.g. a late heartbeat)
    UNIMPLEMENTED = "UNIMPLEMENTED"  # an optional behaviour the worker does not have
    # The scenario or script asked for something impossible (a bad step, a send before any worker connected): its
    # author's to fix, neither a pass nor the worker's fault. Above every passing verdict: the run stopped short, so
    # what it judged is incomplete. Below UNKNOWN: a harness that failed cannot be trusted to say the script was
    # wrong (a script error at run time can be the fault's artefact), and its fault is the one the reader cannot fix
    # by editing the script. Below FAILED: evidence against the worker stands, whatever else went wrong. A catalog
    # case's own bug stays UNKNOWN (oracle harness.case): the catalog ships with the harness, so it is not the reader's.
    SCENARIO_ERROR = "SCENARIO-ERROR"
    UNKNOWN = "UNKNOWN"  # the harness or the launch failed
    FAILED = "FAILED"  # the worker broke the protocol: the real master would misbehave or give up on it


# Merge priority, the declaration order: a FAILED with evidence stands even if the harness or the script failed later.
_RANK = {v: i for i, v in enumerate(Verdict)}
# The verdicts that say nothing about the worker: never a pass, and never a defect caught.
NOT_JUDGED = frozenset({Verdict.SCENARIO_ERROR, Verdict.UNKNOWN})
# What each verdict tells the reader (the report's legend and docs/verdicts.md), worst first.
MEANINGS = {
    Verdict.FAILED: "the worker broke the protocol: the real master would misbehave or give up on it",
    Verdict.UNKNOWN: "the harness could not judge (it or the worker launch failed) - never a pass",
    Verdict.SCENARIO_ERROR: "the scenario or script asked for something impossible: its author's to fix - never a pass",
    Verdict.UNIMPLEMENTED: "an optional behaviour is missing (e.g. giving up on a dead master)",
    Verdict.NON_STRICT: "works with the real master, but outside the tolerance (e.g. a late heartbeat)",
    Verdict.INFORMATIONAL: "differs from Locust's own worker in a way its master accepts",
    Verdict.OK: "conforms",
}


def judged_exit_code(verdicts: Iterable[Verdict]) -> int:
    """A judging command's exit code over its verdicts: 1 if one FAILED, else 2 if nothing was judged or something
    could not be (UNKNOWN, SCENARIO-ERROR: never a pass), else 0."""
    seen = set(verdicts)
    if Verdict.FAILED in seen:
        return 1
    if not seen or seen & NOT_JUDGED:
        return 2
    return 0


def rank(verdict: Verdict) -> int:
    """How bad ``verdict`` is: OK 0 ... FAILED 6 (SCENARIO-ERROR < UNKNOWN < FAILED: evidence of a bug stands)."""
    return _RANK[verdict]


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The merged verdict: the highest-ranked one, OK for none."""
    return max(verdicts, key=_RANK.__getitem__, default=Verdict.OK)


@dataclass(frozen=True)
class Finding:
    """One oracle's judgement, with the facts behind it."""

    oracle: str
    verdict: Verdict
    expected: str
    observed: str
    at: float | None = None  # seconds since the master started, where a moment applies
    consequence: str = ""  # what it does to a real master (harness.consequences), which decided the verdict

    def __str__(self) -> str:
        when = f" at t={self.at:.3f}s" if self.at is not None else ""
        return f"{self.verdict.value} [{self.oracle}]{when}: expected {self.expected}; observed {self.observed}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "oracle": self.oracle,
            "verdict": self.verdict.value,
            "expected": self.expected,
            "observed": self.observed,
        }
        if self.at is not None:
            out["at"] = round(self.at, 4)
        if self.consequence:
            out["consequence"] = self.consequence
        return out

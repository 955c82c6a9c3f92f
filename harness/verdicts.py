"""Graded verdicts (Autobahn's scale plus Jepsen's UNKNOWN) and the findings that justify them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Verdict(enum.StrEnum):
    """How a case ended. UNKNOWN means the harness could not judge: it is never a pass."""

    OK = "OK"
    INFORMATIONAL = "INFORMATIONAL"  # differs from Locust's own peer in a way its master accepts
    NON_STRICT = "NON-STRICT"  # works with a real master, but outside the tolerance (e.g. a late heartbeat)
    UNIMPLEMENTED = "UNIMPLEMENTED"  # an optional behaviour the worker does not have
    UNKNOWN = "UNKNOWN"  # the harness or the launch failed
    FAILED = "FAILED"  # the worker broke the protocol: the real master would misbehave or give up on it


# Merge priority: a FAILED with evidence stands even if the harness failed later.
_RANK = {
    v: i
    for i, v in enumerate(
        [Verdict.OK, Verdict.INFORMATIONAL, Verdict.NON_STRICT, Verdict.UNIMPLEMENTED, Verdict.UNKNOWN, Verdict.FAILED]
    )
}


def rank(verdict: Verdict) -> int:
    """How bad ``verdict`` is: OK 0 ... FAILED 5 (UNKNOWN ranks below FAILED: evidence of a bug stands)."""
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

"""A protocol violation as data: recorded in traces, judged by oracles, never raised mid-stream."""

from __future__ import annotations

from dataclasses import dataclass

from harness.protocol.schema import Problem, Severity


@dataclass(frozen=True)
class Violation:
    """The peer broke ``rule``: it should have done ``expected`` but did ``observed``."""

    rule: str
    expected: str
    observed: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"[{self.rule}] expected {self.expected}; observed {self.observed}"

    @classmethod
    def from_problem(cls, message_type: str, problem: Problem) -> Violation:
        return cls(f"schema.{message_type}", f"{problem.path} as {problem.expected}", problem.observed, problem.severity)

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "expected": self.expected, "observed": self.observed, "severity": self.severity.value}

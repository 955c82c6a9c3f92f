"""Schema: every message the worker sent fits its schema (what the real master cannot read, and what it reads but
Locust's own worker never sends)."""

from __future__ import annotations

from typing import Any

from harness.consequences import judged
from harness.oracles.evidence import Evidence
from harness.protocol.schema import Severity
from harness.trace import TraceRecord
from harness.verdicts import Finding


def check_schema(ev: Evidence) -> list[Finding]:
    """Every message the worker sent fits its schema: one finding per violated rule and field, with how many messages
    broke it (``schema.<type>`` for what the real master cannot read, ``schema.deviation.<type>`` for what it reads
    but Locust's own worker never sends)."""
    groups: dict[tuple[str, str, str], list[tuple[TraceRecord, Any]]] = {}
    for rec in ev.received():
        for v in rec.violations:
            if v.rule.startswith(("schema", "type", "direction")):
                family = "schema" if v.severity is Severity.ERROR else "schema.deviation"
                groups.setdefault((family, v.rule.split(".", 1)[-1], v.expected), []).append((rec, v))
    findings = []
    for (family, name, expected), hits in groups.items():
        rec, v = hits[0]
        count = f" ({len(hits)} messages, the first shown)" if len(hits) > 1 else ""
        findings.append(judged(f"{family}.{name}", expected, f"{v.observed}{count}", ev.rel(rec.t)))
    return findings

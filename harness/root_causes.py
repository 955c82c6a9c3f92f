"""Root causes: the findings of a whole run grouped by what they say, so forty findings read as the one defect they are.

Findings are grouped by oracle, verdict and their observation with the particulars stripped (numbers, ids,
addresses, paths), worst first and then by how many cases show them. Pure: it reads the cases as results.json
holds them, so reports and ``compare`` can group any run after the fact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from harness.verdicts import Verdict, rank

_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\btcp://\S+")
_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")
# hex ids (node ids after their host part, object addresses): six or more hex digits with a letter and a digit
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,})(?![0-9A-Za-z])")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
PATTERN_CHARS = 300


def normalise(text: str) -> str:
    """``text`` with what differs from one occurrence to the next stripped: addresses, paths, ids, numbers."""
    text = _ADDRESS.sub("<addr>", text)
    text = _PATH.sub("<path>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return text[:PATTERN_CHARS]


def root_causes(cases: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's non-OK findings grouped by (oracle, verdict, normalised observation), worst first."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for case in cases:
        for finding in case.get("findings", []):
            if finding["verdict"] == Verdict.OK.value:
                continue
            key = (finding["oracle"], finding["verdict"], normalise(finding["observed"]))
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    "oracle": finding["oracle"],
                    "verdict": finding["verdict"],
                    "consequence": finding.get("consequence", ""),
                    "pattern": key[2],
                    "cases": [],
                    "kinds": [],
                    "findings": 0,
                    "first": {
                        "case": case["id"],
                        "expected": finding["expected"],
                        "observed": finding["observed"],
                        **({"at": finding["at"]} if "at" in finding else {}),
                    },
                }
            group["findings"] += 1
            if case["id"] not in group["cases"]:
                group["cases"].append(case["id"])
            kind = case.get("kind", "conformance")
            if kind not in group["kinds"]:
                group["kinds"].append(kind)
    return sorted(groups.values(), key=lambda g: (-rank(Verdict(g["verdict"])), -len(g["cases"]), g["oracle"], g["pattern"]))


def describe(cause: dict[str, Any], width: int = 160) -> str:
    """One line for the command line: ``FAILED [oracle] in 9 cases (robustness): observation (first: case)``."""
    cases = cause["cases"]
    where = f"in {len(cases)} case{'s' if len(cases) != 1 else ''}"
    kinds = "" if cause["kinds"] == ["conformance"] else f" ({', '.join(cause['kinds'])})"
    head = f"{cause['verdict']} [{cause['oracle']}] {where}{kinds}: "
    tail = f" (first: {cause['first']['case']})"
    body = str(cause["first"]["observed"]).replace("\n", " ")
    room = max(20, width - len(head) - len(tail))
    return head + (body if len(body) <= room else body[: room - 3] + "...") + tail

"""The real Locust worker, judged on the whole catalog: every verdict is the documented one."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from harness.catalog import all_cases
from harness.runner import RunConfig, run_catalog
from harness.verdicts import Verdict

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(600),
    pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs the real Locust: pip install .[locust]"),
]
EXPECTED = Path(__file__).resolve().parents[2] / "docs" / "locust-expected.json"


def test_locust_worker_gets_the_documented_verdicts(tmp_path: Path) -> None:
    expected: dict[str, list[str]] = {k: v for k, v in json.loads(EXPECTED.read_text()).items() if not k.startswith("_")}
    run = run_catalog(all_cases(), RunConfig("locust", "locust"), tmp_path)
    unexpected = [
        f"{r.case.id}: {r.verdict.value} (documented: {expected.get(r.case.id, ['OK'])}) - {r.summary()}"
        for r in run.results
        if r.verdict.value not in expected.get(r.case.id, [Verdict.OK.value])
    ]
    assert not unexpected, "\n".join(unexpected)
    assert not any(r.verdict is Verdict.UNKNOWN for r in run.results)
    assert set(expected) <= {c.id for c in all_cases()}, "docs/locust-expected.json names a case that no longer exists"

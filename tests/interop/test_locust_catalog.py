"""The real Locust worker, time-compressed, judged on the catalog: every verdict is the documented one.

The three master-silence cases wait out the worker's own timeout (12 s at 0.2 s): they run at their real length, with
the rest of the catalog at the worker's own 1 s pace, in tests/interop/test_foreign_workers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog import all_cases
from harness.runner import AUTO, RunConfig, run_catalog
from harness.verdicts import Verdict
from tests.foreign_peers import locust_expected, locust_or_skip, undocumented

locust_or_skip()

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(600),
]


def test_locust_worker_gets_the_documented_verdicts(tmp_path: Path) -> None:
    expected = locust_expected()
    silence = [c for c in all_cases() if c.category == "reconnect" and c.waits]
    cases = [c for c in all_cases() if c not in silence]
    run = run_catalog(cases, RunConfig("locust", "locust"), tmp_path, excluded=silence, jobs=AUTO)  # as users run it
    assert [n.case.id for n in run.not_run] == [c.id for c in silence] and len(silence) == 3
    unexpected = undocumented(run.results, expected)
    assert not unexpected, "\n".join(unexpected)
    assert not any(r.verdict is Verdict.UNKNOWN for r in run.results)
    assert set(expected) <= {c.id for c in all_cases()}, "docs/locust-expected.json names a case that no longer exists"

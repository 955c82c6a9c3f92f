"""Older real Locust workers (``--worker locust@VERSION``) under the master profile of their own release: every
verdict is the documented one (docs/locust-releases-expected.json; why: docs/compatibility.md).

Each release runs its documented non-OK cases and a sample of the rest (the whole matrix is docs/compatibility.md's
job); the environments come from the cache ``make test`` fills while the unit tests run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.catalog import all_cases, by_id
from harness.protocol.profiles import master_profile
from harness.runner import AUTO, RunConfig, run_catalog
from harness.verdicts import Verdict
from tests.foreign_peers import locust_or_skip, undocumented

locust_or_skip()

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]
EXPECTED = Path(__file__).resolve().parents[2] / "docs" / "locust-releases-expected.json"
SAMPLE = ("spawn/01-basic", "stop-quit/01-stop-then-ready", "stats/03-mergeable-by-locust")


def documented() -> dict[str, dict[str, list[str]]]:
    return {k: v for k, v in json.loads(EXPECTED.read_text()).items() if not k.startswith("_")}


@pytest.mark.parametrize("entry", list(documented()))
def test_an_older_locust_worker_gets_its_documented_verdicts(entry: str, tmp_path: Path) -> None:
    worker, profile = entry.split()
    expected = documented()[entry]
    cases = [by_id(c) for c in dict.fromkeys([*SAMPLE, *expected])]
    config = RunConfig(worker, entry, master_profile=master_profile(profile))
    run = run_catalog(cases, config, tmp_path, jobs=AUTO)
    assert run.not_run == [] and len(run.results) == len(cases)
    unexpected = undocumented(run.results, expected)
    assert not unexpected, "\n".join(unexpected)
    assert not any(r.verdict is Verdict.UNKNOWN for r in run.results)
    assert set(expected) <= {c.id for c in all_cases()}, "docs/locust-releases-expected.json names a case that no longer exists"

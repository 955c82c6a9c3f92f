"""The suite's mutation check (tests/code_mutations.py): every listed break of the code turns its tests red."""

from __future__ import annotations

import pytest

from tests.code_mutations import MUTATIONS, ROOT, check_all


def test_every_mutation_still_matches_the_code() -> None:
    """A mutation whose text the code no longer has would check nothing: the table must follow the code."""
    stale = [m.name for m in MUTATIONS if (ROOT / m.path).read_text().count(m.find) != 1]
    assert not stale, f"update tests/code_mutations.py: these no longer match the code exactly once: {stale}"


@pytest.mark.timeout(400)
def test_every_mutation_is_caught_by_its_tests() -> None:
    outcomes = check_all(MUTATIONS, jobs=2)
    print("\n" + "\n".join(o.row() for o in outcomes))
    survived = [o.row() for o in outcomes if not o.caught]
    assert not survived, "\n".join(survived)

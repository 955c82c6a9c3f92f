"""The conformance catalog: every case, by stable id."""

from __future__ import annotations

import fnmatch

from harness.catalog import handshake, heartbeat, malformed, reconnect, spawn, stats, stop_quit, storms, timing  # noqa: F401
from harness.catalog.base import CATEGORIES, REGISTRY, Case, CaseContext

__all__ = ["CATEGORIES", "REGISTRY_IDS", "Case", "CaseContext", "all_cases", "by_id", "select"]

REGISTRY_IDS = frozenset(REGISTRY)


def all_cases() -> list[Case]:
    """Every case, by category then id."""
    return sorted(REGISTRY.values(), key=lambda c: (CATEGORIES.index(c.category), c.id))


def by_id(case_id: str) -> Case:
    """One case by its exact id."""
    return REGISTRY[case_id]


def select(patterns: str | None) -> list[Case]:
    """Cases whose id or category matches any comma-separated glob (``spawn/*,storms``)."""
    if not patterns:
        return all_cases()
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    return [
        c
        for c in all_cases()
        if any(fnmatch.fnmatch(c.id, g) or c.category == g or fnmatch.fnmatch(c.id, g + "*") for g in globs)
    ]

"""The documented schema of ``results.json`` (docs/results-schema.md) and its validation."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_FILE = "results.schema.json"


@functools.cache
def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every ``results.json`` this harness writes conforms to."""
    text = resources.files("harness.report").joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_version() -> int:
    """The ``schema_version`` the schema describes."""
    version: int = results_schema()["properties"]["schema_version"]["const"]
    return version


def schema_errors(document: Any) -> list[str]:
    """Every way ``document`` departs from the schema, one line each, with the JSON path; empty if valid."""
    validator = jsonschema.Draft202012Validator(results_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def _path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out

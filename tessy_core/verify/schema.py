"""Test cases: the catalog's schema (see docs/CONVENTIONS.md), parsed leniently for people's files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tessy_core.catalog.schema import TESTS_ADAPTER, CallTest, StdioTest, TestCase

__all__ = ["CallTest", "StdioTest", "TestCase", "parse_tests"]


def parse_tests(tests: Iterable[Mapping[str, Any] | StdioTest | CallTest]) -> list[StdioTest | CallTest]:
    """Validate tests; a dict without `kind` is a stdio test (`{"input", "output"}` files)."""
    raw = [
        test if isinstance(test, StdioTest | CallTest) else ({"kind": "stdio", **test} if "kind" not in test else test)
        for test in tests
    ]
    return TESTS_ADAPTER.validate_python(raw)

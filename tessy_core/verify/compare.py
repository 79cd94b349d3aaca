"""Tolerant comparison of program output with the expected answer."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_INTEGER = re.compile(r"[+-]?\d+")


def _as_float(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def tokens_match(actual: str, expected: str, abs_tol: float, rel_tol: float) -> bool:
    """Equal tokens, or equal within tolerance when one is a non-integer number.

    Two integers compare exactly: a float tolerance would accept 10**18 + 1 for 10**18.
    """
    if actual == expected:
        return True
    if _INTEGER.fullmatch(actual) and _INTEGER.fullmatch(expected):
        return int(actual) == int(expected)
    actual_value, expected_value = _as_float(actual), _as_float(expected)
    if actual_value is None or expected_value is None:
        return False
    return math.isclose(actual_value, expected_value, rel_tol=rel_tol, abs_tol=abs_tol)


def outputs_match(actual: str, expected: str, abs_tol: float = 1e-6, rel_tol: float = 1e-6) -> bool:
    """Whitespace-insensitive comparison of whole outputs, token by token."""
    actual_tokens, expected_tokens = actual.split(), expected.split()
    return len(actual_tokens) == len(expected_tokens) and all(
        tokens_match(a, e, abs_tol, rel_tol) for a, e in zip(actual_tokens, expected_tokens)
    )


def values_match(actual: Any, expected: Any, abs_tol: float = 1e-6, rel_tol: float = 1e-6) -> bool:
    """Structural comparison of JSON values (a call's return value with the expected one).

    Booleans are not numbers here (True is not 1), ints compare exactly, floats within tolerance.
    """
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        if isinstance(actual, int) and isinstance(expected, int):
            return actual == expected
        return math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            values_match(a, e, abs_tol, rel_tol) for a, e in zip(actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            values_match(actual[k], expected[k], abs_tol, rel_tol) for k in actual)
    return actual == expected


def normalize_json(value: Any) -> Any:
    """The value as it looks after a JSON round trip (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))

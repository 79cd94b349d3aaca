"""Comparison of a program's output with the expected answer: exact unless the expected value is a float.

Stdio outputs compare token by token (whitespace-insensitive). A token matches when it is the same
string, or, when the expected token is an integer, the same integer (any length, `+7`/`007` for
`7`: never through a float), or, only when the expected token is a float (a decimal point or an
exponent), a finite number within the tolerance. `1000001.0` never passes for `1000000`.

Call-based results compare by type and value: ints exactly (a float or a bool is not an int),
strings, None, lists and dicts structurally; a tolerance applies only where the expected value is a
float (an int result is accepted there when within it).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")

DEFAULT_ABS_TOL = 1e-6
DEFAULT_REL_TOL = 1e-6


def _canonical_integer(token: str) -> str:
    sign = "-" if token.startswith("-") else ""
    digits = token.lstrip("+-").lstrip("0") or "0"
    return digits if digits == "0" else sign + digits


def _finite(token: str) -> float | None:
    if not _FLOAT.fullmatch(token):
        return None
    value = float(token)
    return value if math.isfinite(value) else None


def tokens_match(actual: str, expected: str, abs_tol: float = DEFAULT_ABS_TOL, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    if actual == expected:
        return True
    if _INTEGER.fullmatch(expected):
        return bool(_INTEGER.fullmatch(actual)) and _canonical_integer(actual) == _canonical_integer(expected)
    expected_value = _finite(expected)
    if expected_value is None:
        return False  # words, inf/nan and other non-numbers compare as strings
    actual_value = _finite(actual)
    return actual_value is not None and math.isclose(actual_value, expected_value, rel_tol=rel_tol, abs_tol=abs_tol)


def outputs_match(actual: str, expected: str, abs_tol: float = DEFAULT_ABS_TOL, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Whitespace-insensitive comparison of whole outputs, token by token."""
    actual_tokens, expected_tokens = actual.split(), expected.split()
    return len(actual_tokens) == len(expected_tokens) and all(
        tokens_match(a, e, abs_tol, rel_tol) for a, e in zip(actual_tokens, expected_tokens)
    )


def values_match(actual: Any, expected: Any, abs_tol: float = DEFAULT_ABS_TOL, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Structural comparison of JSON values (a call's return value with the expected one)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int):
        return type(actual) is int and actual == expected
    if isinstance(expected, float):
        if type(actual) not in (int, float):
            return False
        try:
            return math.isclose(float(actual), expected, rel_tol=rel_tol, abs_tol=abs_tol)
        except OverflowError:  # an int too large for a float
            return False
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            values_match(a, e, abs_tol, rel_tol) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            values_match(actual[k], expected[k], abs_tol, rel_tol) for k in expected)
    return type(actual) is type(expected) and actual == expected


def normalize_json(value: Any) -> Any:
    """The value as it looks after a JSON round trip (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))

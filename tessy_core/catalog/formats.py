"""Map one raw row of a public code dataset to a `PromptRecord`, or reject it with a reason.

Each supported shape has one small mapper. `detect_format` picks the shape from a row's keys, so
one file may even mix shapes; `--format` forces one.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from tessy_core.catalog.schema import TESTS_ADAPTER, CallTest, PromptRecord, StdioTest, TestCase
from tessy_core.enums import RowFormat  # noqa: F401 - part of the formats API


class RowRejected(Exception):
    """A row that cannot become a prompt. `code` groups rejects; `detail` says what exactly."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


PROMPT_ONLY_STATEMENT_KEYS = ("statement", "prompt", "question", "problem")
_CODECONTESTS_TEST_KEYS = ("public_tests", "private_tests", "generated_tests")

# CodeContests `difficulty` enum: 0 unknown, 1-5 named levels, 6 external, 7.. Codeforces index a, b, ...
_CODECONTESTS_DIFFICULTIES = ("easy", "medium", "hard", "harder", "hardest", "external")


def detect_format(row: Mapping[str, Any]) -> RowFormat:
    keys = row.keys()
    if "question_content" in keys:
        return RowFormat.LIVECODEBENCH
    if "description" in keys and any(key in keys for key in _CODECONTESTS_TEST_KEYS):
        return RowFormat.CODECONTESTS
    if "verification_info" in keys:
        return RowFormat.OPEN_R1
    if "question" in keys and "input_output" in keys:
        return RowFormat.APPS
    if "statement" in keys and "tests" in keys:
        return RowFormat.TESSY
    if any(key in keys for key in PROMPT_ONLY_STATEMENT_KEYS):
        return RowFormat.PROMPT_ONLY
    shown = ", ".join(sorted(map(str, keys))[:20])
    raise RowRejected("unknown_shape", f"no supported format has these keys: {shown}")


def map_row(row: Mapping[str, Any], source: str, row_format: RowFormat = RowFormat.AUTO) -> PromptRecord:
    """The prompt a raw row describes; raises `RowRejected` with the reason otherwise."""
    if not isinstance(row, Mapping):
        raise RowRejected("not_an_object", f"row is a {type(row).__name__}, not an object")
    resolved = detect_format(row) if row_format is RowFormat.AUTO else row_format
    return _MAPPERS[resolved](row, source)


# --- field helpers -------------------------------------------------------------------------------


def _statement(row: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = row.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RowRejected("wrong_type", f"{key} must be a string, got {type(value).__name__}")
        if value.strip():
            return value
    raise RowRejected("missing_statement", f"none of {', '.join(keys)} holds a non-empty statement")


def _optional_str(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowRejected("wrong_type", f"{key} must be a string, got {type(value).__name__}")
    return str(value)


def _first_str(row: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = _optional_str(row, key)
        if value is not None:
            return value
    return None


def _json_value(value: Any, field: str, code: str = "invalid_tests") -> Any:
    """Fields that sources ship either as JSON text or already decoded."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise RowRejected(code, f"{field} is not valid JSON ({error.msg} at char {error.pos})") from None


def _string_list(value: Any, field: str) -> list[str]:
    """Tags arrive as a list, a JSON list or a Python list literal (TACO)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RowRejected("wrong_type", f"{field} is a string that is not a list literal") from None
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise RowRejected("wrong_type", f"{field} must be a list of strings")
    return [item for item in value if item]


def _stdio_pairs(inputs: Any, outputs: Any, field: str, hidden: bool) -> list[StdioTest]:
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise RowRejected("invalid_tests", f"{field} inputs and outputs must be lists")
    if len(inputs) != len(outputs):
        raise RowRejected(
            "invalid_tests", f"{field} has {len(inputs)} inputs but {len(outputs)} outputs"
        )
    for value in (*inputs, *outputs):
        if not isinstance(value, str):
            raise RowRejected("invalid_tests", f"{field} stdin/stdout values must be strings")
    return [StdioTest(input=i, output=o, hidden=hidden) for i, o in zip(inputs, outputs, strict=True)]


def _call_args(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise RowRejected("invalid_tests", f"{field} call arguments must be a list")
    return value


_BYTES_PER_MB = 1024 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?)?\s*$", re.I)
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kb|kilobytes?|mb|megabytes?|gb|gigabytes?)?\s*$", re.I)


def _seconds(value: Any, field: str) -> float | None:
    """A limit given as a number of seconds or as text such as "2 seconds" / "500 ms"."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise RowRejected("wrong_type", f"{field} is not a duration: {str(value)[:80]!r}")
    amount = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    seconds = amount / 1000 if unit.startswith("m") else amount
    return seconds if seconds > 0 else None


def _megabytes(value: Any, field: str) -> int | None:
    """A memory limit given in MB or as text such as "256 megabytes"."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(1, int(value)) if value > 0 else None
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None:
        raise RowRejected("wrong_type", f"{field} is not a memory size: {str(value)[:80]!r}")
    amount = float(match.group(1))
    unit = (match.group(2) or "mb").lower()[0]
    megabytes = {"k": amount / 1024, "m": amount, "g": amount * 1024}[unit]
    return max(1, int(megabytes)) if megabytes > 0 else None


def _record(**fields: Any) -> PromptRecord:
    """Build the record, turning validation errors into a reject. None means "use the default"."""
    try:
        return PromptRecord(**{key: value for key, value in fields.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        raise RowRejected("invalid_field", f"{where}: {first['msg']}") from None


def _difficulty(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowRejected("wrong_type", f"difficulty must be a string or number, got {type(value).__name__}")
    return str(value).lower()


# --- mappers -------------------------------------------------------------------------------------


def from_tessy(row: Mapping[str, Any], source: str) -> PromptRecord:
    """Our own schema. `source`, `prompt_id` and `ingested_at` are assigned by the catalog."""
    fields = {k: v for k, v in row.items() if k not in ("source", "prompt_id", "ingested_at")}
    _statement(fields, "statement")
    raw_tests = fields.get("tests")
    if isinstance(raw_tests, list):
        # Parquet writers fill fields missing from some tests with nulls; null means "default".
        raw_tests = [
            {k: v for k, v in test.items() if v is not None} if isinstance(test, Mapping) else test
            for test in raw_tests
        ]
    try:
        fields["tests"] = TESTS_ADAPTER.validate_python(raw_tests if raw_tests is not None else [])
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RowRejected("invalid_tests", f"tests.{where}: {first['msg']}") from None
    return _record(source=source, **fields)


def from_apps(row: Mapping[str, Any], source: str) -> PromptRecord:
    """APPS and TACO: `input_output` holds `inputs`/`outputs`, plus `fn_name` for call-based tests."""
    statement = _statement(row, "question")
    io = _json_value(row.get("input_output"), "input_output") if row.get("input_output") else {}
    if not isinstance(io, dict):
        raise RowRejected("invalid_tests", "input_output must be an object with inputs/outputs")
    inputs, outputs = io.get("inputs", []), io.get("outputs", [])
    fn_name = io.get("fn_name")
    tests: list[TestCase]
    if fn_name is None:
        tests = list(_stdio_pairs(inputs, outputs, "input_output", hidden=False))
    else:
        if not isinstance(fn_name, str) or not fn_name:
            raise RowRejected("invalid_tests", "input_output.fn_name must be a non-empty string")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise RowRejected("invalid_tests", "input_output inputs/outputs must be lists of equal length")
        tests = [
            CallTest(fn_name=fn_name, args=_call_args(args, "input_output"), expected=expected)
            for args, expected in zip(inputs, outputs, strict=True)
        ]
    return _record(
        source=source,
        source_id=_first_str(row, "url", "problem_id", "id"),
        license=_optional_str(row, "license"),
        statement=statement,
        tests=tests,
        fn_name=fn_name,
        starter_code=_optional_str(row, "starter_code"),
        time_limit_s=_seconds(row.get("time_limit"), "time_limit"),
        memory_limit_mb=_megabytes(row.get("memory_limit"), "memory_limit"),
        difficulty=_difficulty(row.get("difficulty")),
        tags=_string_list(row.get("tags"), "tags"),
    )


def _codecontests_difficulty(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return _difficulty(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowRejected("wrong_type", "difficulty must be the CodeContests integer enum")
    if value <= 0:
        return None
    if value <= len(_CODECONTESTS_DIFFICULTIES):
        return _CODECONTESTS_DIFFICULTIES[value - 1]
    return chr(ord("a") + value - len(_CODECONTESTS_DIFFICULTIES) - 1)


def _codecontests_seconds(value: Any) -> float | None:
    if value is None or isinstance(value, int | float | str):
        return _seconds(value, "time_limit")
    if not isinstance(value, Mapping):
        raise RowRejected("wrong_type", "time_limit must be {seconds, nanos}")
    seconds, nanos = value.get("seconds") or 0, value.get("nanos") or 0
    if not isinstance(seconds, int | float) or not isinstance(nanos, int | float):
        raise RowRejected("wrong_type", "time_limit seconds/nanos must be numbers")
    total = seconds + nanos / 1e9
    return total if total > 0 else None


def from_codecontests(row: Mapping[str, Any], source: str) -> PromptRecord:
    """DeepMind CodeContests: public tests are shown to the model, private and generated hidden."""
    statement = _statement(row, "description")
    tests: list[TestCase] = []
    for key in _CODECONTESTS_TEST_KEYS:
        group = row.get(key)
        if group is None:
            continue
        if not isinstance(group, Mapping):
            raise RowRejected("invalid_tests", f"{key} must be an object with input/output lists")
        hidden = key != "public_tests"
        tests.extend(_stdio_pairs(group.get("input", []), group.get("output", []), key, hidden))
    memory_bytes = row.get("memory_limit_bytes")
    if memory_bytes is not None and (isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int)):
        raise RowRejected("wrong_type", "memory_limit_bytes must be an integer")
    return _record(
        source=source,
        source_id=_optional_str(row, "name"),
        license=_optional_str(row, "license"),
        statement=statement,
        tests=tests,
        time_limit_s=_codecontests_seconds(row.get("time_limit")),
        memory_limit_mb=_megabytes(memory_bytes / _BYTES_PER_MB, "memory_limit_bytes") if memory_bytes else None,
        difficulty=_codecontests_difficulty(row.get("difficulty")),
        tags=_string_list(row.get("cf_tags"), "cf_tags"),
    )


_OPEN_R1_STDIO_TYPES = frozenset({"stdin_stdout", "stdin", "stdio"})
_OPEN_R1_CALL_TYPES = frozenset({"function_call", "functional", "call"})


def from_open_r1(row: Mapping[str, Any], source: str) -> PromptRecord:
    """open-r1 style: `verification_info` = {language, test_cases: [{input, output, type}]}."""
    statement = _statement(row, "problem", "prompt")
    info = _json_value(row.get("verification_info"), "verification_info")
    if not isinstance(info, Mapping):
        raise RowRejected("invalid_tests", "verification_info must be an object")
    cases = info.get("test_cases") or []
    if not isinstance(cases, list):
        raise RowRejected("invalid_tests", "verification_info.test_cases must be a list")
    tests: list[TestCase] = []
    fn_names: set[str] = set()
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise RowRejected("invalid_tests", f"test_cases[{index}] must be an object")
        kind = case.get("type", "stdin_stdout")
        if kind in _OPEN_R1_STDIO_TYPES:
            tests.extend(_stdio_pairs([case.get("input")], [case.get("output")], f"test_cases[{index}]", False))
        elif kind in _OPEN_R1_CALL_TYPES:
            fn_name = case.get("fn_name") or info.get("fn_name")
            if not isinstance(fn_name, str) or not fn_name:
                raise RowRejected("invalid_tests", f"test_cases[{index}] is a call test without fn_name")
            fn_names.add(fn_name)
            args = _call_args(case.get("input"), f"test_cases[{index}]")
            tests.append(CallTest(fn_name=fn_name, args=args, expected=case.get("output")))
        else:
            raise RowRejected("invalid_tests", f"test_cases[{index}] has unknown type {kind!r}")
    if len(fn_names) > 1:
        raise RowRejected("invalid_tests", f"call tests name several functions: {sorted(fn_names)}")
    language = info.get("language")
    if language is not None and not isinstance(language, str):
        raise RowRejected("wrong_type", "verification_info.language must be a string")
    return _record(
        source=source,
        source_id=_first_str(row, "problem_id", "in_source_id", "id"),
        license=_optional_str(row, "license"),
        statement=statement,
        tests=tests,
        fn_name=next(iter(fn_names), None),
        language=language.lower() if language else None,
        difficulty=_difficulty(row.get("difficulty")),
        tags=_string_list(row.get("tags"), "tags"),
    )


def _livecodebench_cases(value: Any, field: str, hidden: bool, fn_name: str | None) -> list[TestCase]:
    if value is None or value == "":
        return []
    cases = _json_value(value, field)
    if not isinstance(cases, list):
        raise RowRejected("invalid_tests", f"{field} must be a JSON list of test cases")
    tests: list[TestCase] = []
    for index, case in enumerate(cases):
        where = f"{field}[{index}]"
        if not isinstance(case, Mapping):
            raise RowRejected("invalid_tests", f"{where} must be an object")
        test_type = case.get("testtype")
        if test_type == "stdin":
            tests.extend(_stdio_pairs([case.get("input")], [case.get("output")], where, hidden))
        elif test_type == "functional":
            if fn_name is None:
                raise RowRejected("invalid_tests", f"{where} is functional but metadata has no func_name")
            tests.append(_livecodebench_call(case, where, fn_name, hidden))
        else:
            raise RowRejected("invalid_tests", f"{where} has unknown testtype {test_type!r}")
    return tests


def _livecodebench_call(case: Mapping[str, Any], where: str, fn_name: str, hidden: bool) -> CallTest:
    """Functional inputs are one JSON value per line (one per argument); the output is JSON."""
    raw_input, raw_output = case.get("input"), case.get("output")
    if not isinstance(raw_input, str) or not isinstance(raw_output, str):
        raise RowRejected("invalid_tests", f"{where} input and output must be strings")
    try:
        args = [json.loads(line) for line in raw_input.split("\n") if line.strip()]
        expected = json.loads(raw_output)
    except json.JSONDecodeError as error:
        raise RowRejected("invalid_tests", f"{where} functional values are not JSON ({error.msg})") from None
    return CallTest(fn_name=fn_name, args=args, expected=expected, hidden=hidden)


def from_livecodebench(row: Mapping[str, Any], source: str) -> PromptRecord:
    """LiveCodeBench: test cases as JSON text; `metadata.func_name` for functional tests.

    Releases that ship `private_test_cases` pickled and compressed must be decoded to JSON first:
    unpickling untrusted data could run arbitrary code, so the catalog never does it.
    """
    statement = _statement(row, "question_content")
    metadata = _json_value(row.get("metadata") or {}, "metadata", code="wrong_type")
    if not isinstance(metadata, Mapping):
        raise RowRejected("wrong_type", "metadata must be an object")
    fn_name = metadata.get("func_name")
    if fn_name is not None and (not isinstance(fn_name, str) or not fn_name):
        raise RowRejected("wrong_type", "metadata.func_name must be a non-empty string")
    tests = _livecodebench_cases(row.get("public_test_cases"), "public_test_cases", False, fn_name)
    tests += _livecodebench_cases(row.get("private_test_cases"), "private_test_cases", True, fn_name)
    return _record(
        source=source,
        source_id=_first_str(row, "question_id", "question_title"),
        statement=statement,
        tests=tests,
        fn_name=fn_name,
        starter_code=_optional_str(row, "starter_code"),
        difficulty=_difficulty(row.get("difficulty")),
    )


def from_prompt_only(row: Mapping[str, Any], source: str) -> PromptRecord:
    """A bare problem statement without tests (kept for generation; nothing to verify against)."""
    return _record(
        source=source,
        source_id=_first_str(row, "source_id", "problem_id", "id"),
        license=_optional_str(row, "license"),
        statement=_statement(row, *PROMPT_ONLY_STATEMENT_KEYS),
        difficulty=_difficulty(row.get("difficulty")),
        tags=_string_list(row.get("tags"), "tags"),
    )


_MAPPERS: dict[RowFormat, Callable[[Mapping[str, Any], str], PromptRecord]] = {
    RowFormat.TESSY: from_tessy,
    RowFormat.APPS: from_apps,
    RowFormat.CODECONTESTS: from_codecontests,
    RowFormat.OPEN_R1: from_open_r1,
    RowFormat.LIVECODEBENCH: from_livecodebench,
    RowFormat.PROMPT_ONLY: from_prompt_only,
}

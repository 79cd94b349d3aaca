from __future__ import annotations

import json
from typing import Any

import pytest

from tessy_core.catalog.formats import RowFormat, RowRejected, detect_format, map_row
from tessy_core.catalog.schema import CallTest, StdioTest
from tests.catalog import samples


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (samples.TESSY_ROW, RowFormat.TESSY),
        (samples.APPS_STDIO_ROW, RowFormat.APPS),
        (samples.TACO_ROW, RowFormat.APPS),
        (samples.CODECONTESTS_ROW, RowFormat.CODECONTESTS),
        (samples.OPEN_R1_ROW, RowFormat.OPEN_R1),
        (samples.LIVECODEBENCH_ROW, RowFormat.LIVECODEBENCH),
        (samples.PROMPT_ONLY_ROW, RowFormat.PROMPT_ONLY),
        ({"question": "What is 2+2?"}, RowFormat.PROMPT_ONLY),
        ({"statement": "No tests here."}, RowFormat.PROMPT_ONLY),
    ],
)
def test_detects_the_shape_from_the_keys(row: dict[str, Any], expected: RowFormat) -> None:
    assert detect_format(row) is expected


def test_tessy_native_row() -> None:
    record = map_row(samples.TESSY_ROW, "native")
    assert record.source == "native" and record.source_id == "sum-1" and record.license == "cc-by-4.0"
    assert record.tests == [
        StdioTest(input="1 2\n", output="3\n"),
        StdioTest(input="5 5\n", output="10\n", hidden=True),
    ]
    assert (record.time_limit_s, record.memory_limit_mb, record.difficulty, record.tags) == (1.0, 128, "easy", ["math"])


def test_apps_stdio_and_call_rows() -> None:
    stdio = map_row(samples.APPS_STDIO_ROW, "apps")
    assert stdio.tests == [StdioTest(input="3\n1 5 2\n", output="5\n")]
    assert (stdio.source_id, stdio.difficulty, stdio.fn_name) == ("https://example.org/apps/17", "introductory", None)

    call = map_row(samples.APPS_CALL_ROW, "apps")
    assert call.fn_name == "add" and call.starter_code == "def add(a, b):\n    "
    assert call.tests == [
        CallTest(fn_name="add", args=[1, 2], expected=[3]),
        CallTest(fn_name="add", args=[3, 4], expected=[7]),
    ]


def test_taco_limits_and_tags_written_as_text() -> None:
    record = map_row(samples.TACO_ROW, "taco")
    assert (record.time_limit_s, record.memory_limit_mb) == (0.5, 64)
    assert record.tags == ["String", "Implementation"]
    assert record.difficulty == "easy"


def test_codecontests_hides_private_and_generated_tests() -> None:
    record = map_row(samples.CODECONTESTS_ROW, "cc")
    assert [(test.input, test.hidden) for test in record.tests] == [
        ("1\n", False),
        ("2\n", True),
        ("3\n", True),
        ("4\n", True),
    ]
    assert record.time_limit_s == pytest.approx(2.5)
    assert record.memory_limit_mb == 256
    assert record.difficulty == "b"  # enum 8 is the Codeforces index B
    assert record.source_id == "1548_A. Weak Hero" and record.tags == ["graphs"]


def test_open_r1_stdio_and_function_call_rows() -> None:
    stdio = map_row(samples.OPEN_R1_ROW, "r1")
    assert stdio.tests == [StdioTest(input="", output="hello\n")]
    assert stdio.language == "python" and stdio.source_id == "cf_1"

    call = map_row(samples.OPEN_R1_CALL_ROW, "r1")
    assert call.fn_name == "square"
    assert call.tests == [CallTest(fn_name="square", args=[3], expected=[9])]


def test_livecodebench_stdin_and_functional_rows() -> None:
    stdin = map_row(samples.LIVECODEBENCH_ROW, "lcb")
    assert stdin.tests == [StdioTest(input="3\n", output="9\n"), StdioTest(input="4\n", output="16\n", hidden=True)]

    functional = map_row(samples.LIVECODEBENCH_CALL_ROW, "lcb")
    assert functional.fn_name == "shiftedSum" and functional.difficulty == "medium"
    assert functional.tests == [CallTest(fn_name="shiftedSum", args=[[1, 2], 3], expected=6)]


def test_prompt_only_row_has_no_tests() -> None:
    record = map_row(samples.PROMPT_ONLY_ROW, "chat")
    assert record.tests == [] and record.source_id == "p-9"


def test_forced_format_overrides_detection() -> None:
    with pytest.raises(RowRejected) as caught:
        map_row(samples.PROMPT_ONLY_ROW, "s", RowFormat.CODECONTESTS)
    assert caught.value.code == "missing_statement"


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"id": 1, "title": "no statement anywhere"}, "unknown_shape"),
        ({"statement": "   ", "tests": []}, "missing_statement"),
        ({"question": 42, "input_output": ""}, "wrong_type"),
        ({"statement": "S", "tests": "not a list"}, "invalid_tests"),
        ({"statement": "S", "tests": [{"kind": "stdio", "input": 1, "output": "2"}]}, "invalid_tests"),
        ({"statement": "S", "tests": [], "author": "me"}, "invalid_field"),
        ({"statement": "S", "tests": [], "time_limit_s": -1}, "invalid_field"),
        ({"question": "Q", "input_output": json.dumps({"inputs": ["1"], "outputs": []})}, "invalid_tests"),
        ({"question": "Q", "input_output": "{not json"}, "invalid_tests"),
        ({"question": "Q", "input_output": "{}", "tags": "greedy"}, "wrong_type"),
        ({"question": "Q", "input_output": "{}", "time_limit": "fast"}, "wrong_type"),
        ({"description": "D", "public_tests": {"input": [1], "output": ["1"]}}, "invalid_tests"),
        ({"description": "D", "public_tests": [], "difficulty": "x", "memory_limit_bytes": "lots"}, "invalid_tests"),
        ({"description": "D", "public_tests": {"input": [], "output": []}, "memory_limit_bytes": "lots"}, "wrong_type"),
        ({"problem": "P", "verification_info": {"test_cases": [{"input": "", "output": "", "type": "x"}]}}, "invalid_tests"),
        ({"problem": "P", "verification_info": {"test_cases": [{"input": [1], "output": 1, "type": "function_call"}]}}, "invalid_tests"),
        ({"question_content": "L", "public_test_cases": "[{\"input\": \"1\", \"output\": \"1\", \"testtype\": \"functional\"}]"}, "invalid_tests"),
        # LiveCodeBench ships private tests pickled and compressed: refused, never unpickled.
        ({"question_content": "L", "private_test_cases": "eJyLjgUAARUAuQ=="}, "invalid_tests"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason_code(row: dict[str, Any], code: str) -> None:
    with pytest.raises(RowRejected) as caught:
        map_row(row, "s")
    assert caught.value.code == code, caught.value.detail


def test_a_non_object_row_is_rejected() -> None:
    with pytest.raises(RowRejected) as caught:
        map_row(["a", "list"], "s")  # type: ignore[arg-type]
    assert caught.value.code == "not_an_object"

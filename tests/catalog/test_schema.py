from __future__ import annotations

import unicodedata

import pytest
from pydantic import ValidationError

from tessy_core.catalog.schema import (
    TESTS_ADAPTER,
    CallTest,
    PromptRecord,
    StdioTest,
    prompt_id_for,
)


def test_prompt_id_ignores_whitespace_newline_style_and_unicode_form() -> None:
    composed = "Caf\u00e9 problem.\n\nPrint   the answer."
    variants = [
        "  Caf\u00e9 problem.\r\n\r\nPrint the answer.\n",
        unicodedata.normalize("NFD", composed),
        "Caf\u00e9 problem. Print\tthe answer.",
    ]
    assert {prompt_id_for(variant) for variant in variants} == {prompt_id_for(composed)}


def test_prompt_id_is_16_hex_chars_and_content_sensitive() -> None:
    first, second = prompt_id_for("Print 1."), prompt_id_for("Print 2.")
    assert first != second
    assert len(first) == 16 and int(first, 16) >= 0


def test_record_derives_prompt_id_and_normalizes_statement() -> None:
    record = PromptRecord(source="s", statement="  Line one.\r\nLine two.  ")
    assert record.statement == "Line one.\nLine two."
    assert record.prompt_id == prompt_id_for("Line one. Line two.")


def test_record_rejects_a_prompt_id_that_does_not_match_its_statement() -> None:
    with pytest.raises(ValidationError, match="does not match"):
        PromptRecord(source="s", statement="Print 1.", prompt_id="0" * 16)


def test_record_rejects_blank_statement() -> None:
    with pytest.raises(ValidationError):
        PromptRecord(source="s", statement=" \n\t ")


def test_tests_are_told_apart_by_kind() -> None:
    tests = TESTS_ADAPTER.validate_python(
        [
            {"kind": "stdio", "input": "1", "output": "2"},
            {"kind": "call", "fn_name": "f", "args": [1], "expected": 2, "hidden": True},
        ]
    )
    assert tests == [StdioTest(input="1", output="2"), CallTest(fn_name="f", args=[1], expected=2, hidden=True)]
    with pytest.raises(ValidationError):
        TESTS_ADAPTER.validate_python([{"kind": "shell", "input": "1", "output": "2"}])
    with pytest.raises(ValidationError):
        TESTS_ADAPTER.validate_python([{"kind": "call", "args": [1], "expected": 2}])


def test_record_round_trips_through_json_and_reports_test_kind() -> None:
    record = PromptRecord(
        source="s",
        statement="Add.",
        tests=[StdioTest(input="1 1", output="2"), CallTest(fn_name="add", args=[1, 1], expected=2, hidden=True)],
        tags=["math"],
    )
    assert PromptRecord.model_validate_json(record.model_dump_json()) == record
    assert record.test_kind == "mixed"
    assert record.hidden_test_count == 1
    assert PromptRecord(source="s", statement="Add.").test_kind == "none"

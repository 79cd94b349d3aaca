"""The staged row is stated once: the suite's required columns and the dtypes derive from it."""

from __future__ import annotations

import polars as pl

from tessy_core.quality.expectations import DEFAULT_REQUIRED_COLUMNS
from tessy_core.rows import (
    StagedSample,
    columns,
    polars_schema,
    unpublished_columns,
    validated_columns,
)


def engine_record(**overrides):
    record = {
        "sample_id": "s", "prompt_id": "p", "sample_index": 0, "mode": "mixture", "status": "ok",
        "failure_reason": None, "messages": [{"role": "user", "content": "x"}], "problem": "x", "thinking": "t",
        "answer": "a", "assistant": "<think>\nt\n</think>\n\na", "answer_role": "student", "spans": [],
        "usage": {"student": {"requests": 1, "tokens_generated": 3, "tokens_kept": 3, "tokens_discarded": 0}},
        "identities": {"config_hash": "h"}, "attempts": 1, "attempt_failures": [], "wall_s": 0.5,
        "teacher_token_share": 0.0, "mode_details": {"drawn_mode": "student_only"},
    }
    return {**record, **overrides}


def test_the_suite_requires_the_rows_validated_columns():
    assert DEFAULT_REQUIRED_COLUMNS == (*validated_columns(), "split")
    assert set(validated_columns()) <= set(columns())
    assert {"student_nll", "student_reference", "mode_details"} <= set(unpublished_columns())


def test_a_row_from_an_engine_record_keeps_its_fields_its_verdict_and_its_scores():
    row = StagedSample.from_engine(engine_record(unknown_engine_field=1), {"verdict": "accepted"},
                                   {"student_nll": 0.5, "student_tokens": 4})
    assert row.verification == {"verdict": "accepted"} and row.student_nll == 0.5
    assert row.mode_details == '{"drawn_mode": "student_only"}'
    assert StagedSample.from_engine(engine_record(mode_details={})).mode_details is None


def test_scalar_columns_get_their_dtypes_from_the_model_even_when_all_null():
    rows = [StagedSample.from_engine(engine_record(status="failed", failure_reason=None)).model_dump(mode="json")]
    frame = pl.DataFrame(rows, schema_overrides=polars_schema(), infer_schema_length=None)
    assert frame.schema["failure_reason"] == pl.String and frame.schema["student_nll"] == pl.Float64
    assert frame.schema["sample_index"] == pl.Int64 and frame.schema["attempt_failures"] != pl.String

"""The staged row: one sample of a build as the shard stages write it and the version stages read it.

`StagedSample` is the only statement of the row's schema. The shard stages (generate, verify)
fill it; the sample table of a version, the columns the validation suite requires and the polars
dtypes of the scalar columns all derive from it. A column a new expectation needs is a field here
(marked `validated` when the suite must find it), not a change to the pipeline.
"""

from __future__ import annotations

import json
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Field

from tessy_core.strict import Strict

# Field markers: the validation suite's schema check requires the column; the column is the build's
# own (kept in the staged rows and the rejected rows), not part of a published version.
VALIDATED = {"validated": True}
BUILD_ONLY = {"published": False}


class StagedSample(Strict):
    """One generated (or failed) sample with its verification."""

    sample_id: str = Field(json_schema_extra=VALIDATED)
    prompt_id: str = Field(json_schema_extra=VALIDATED)
    sample_index: int
    mode: str = Field(json_schema_extra=VALIDATED)
    status: Literal["ok", "failed"] = Field(json_schema_extra=VALIDATED)
    failure_reason: str | None = Field(json_schema_extra=VALIDATED)
    messages: list[dict[str, str]] = Field(json_schema_extra=VALIDATED, description="user and assistant turns")
    problem: str = Field(json_schema_extra=VALIDATED)
    thinking: str = Field(json_schema_extra=VALIDATED)
    answer: str = Field(json_schema_extra=VALIDATED)
    assistant: str = Field(
        json_schema_extra=VALIDATED, description="the assistant turn in the student's format (thinking block + answer)"
    )
    answer_role: str
    spans: list[dict[str, Any]] = Field(json_schema_extra=VALIDATED, description="the trace's spans, who wrote each")
    usage: dict[str, dict[str, int | None]] = Field(description="model role -> requests and tokens")
    identities: dict[str, str] = Field(description="model and predictor ids, config hash")
    attempts: int
    attempt_failures: list[str]
    wall_s: float
    teacher_token_share: float = Field(json_schema_extra=VALIDATED)
    mode_details: str | None = Field(
        None, json_schema_extra=BUILD_ONLY,
        description="JSON of what the mode did besides the sample's text (a reference, candidates, the drawn mode)",
    )
    verification: dict[str, Any] | None = Field(
        None, json_schema_extra=VALIDATED, description="the sandbox's verdict (None: not verified)"
    )
    # The style-score stage (tessy_core.builder.style_score); None when the style gate is off or the
    # sample was not scored.
    student_nll: float | None = Field(
        None, json_schema_extra=BUILD_ONLY, description="the student's mean per-token NLL of the assistant text"
    )
    student_tokens: int | None = Field(None, json_schema_extra=BUILD_ONLY, description="tokens the NLL is over")
    style_token_rate: float | None = Field(
        None, json_schema_extra=BUILD_ONLY, description="share of the thinking's tokens the student's predictor calls style"
    )
    student_reference: str | None = Field(
        None, json_schema_extra=BUILD_ONLY,
        description="the student's own response to the prompt (sampled prompts only), for the TF-IDF similarity",
    )

    @classmethod
    def from_engine(cls, record: dict[str, Any], verification: dict[str, Any] | None = None,
                    style: dict[str, Any] | None = None) -> StagedSample:
        """The row of an engine `SampleResult.to_record()` (the fields this row keeps), its verdict
        and its style figures."""
        kept = {k: v for k, v in record.items() if k in cls.model_fields}
        details = kept.pop("mode_details", None)
        if details:
            kept["mode_details"] = json.dumps(details, ensure_ascii=False, sort_keys=True)
        return cls.model_validate({**kept, "verification": verification, **(style or {})})


def columns() -> tuple[str, ...]:
    """The staged row's columns, in order."""
    return tuple(StagedSample.model_fields)


def validated_columns() -> tuple[str, ...]:
    """The columns the validation suite requires of a sample table."""
    return tuple(
        name for name, field in StagedSample.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("validated")
    )


def unpublished_columns() -> tuple[str, ...]:
    """The build's own columns, left out of a published version."""
    return tuple(
        name for name, field in StagedSample.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("published") is False
    )


def polars_schema() -> dict[str, Any]:
    """Polars dtypes of the scalar columns; nested columns (spans, usage, ...) are left to inference."""
    import polars as pl

    scalars = {str: pl.String, int: pl.Int64, float: pl.Float64, bool: pl.Boolean}
    schema = {}
    for name, field in StagedSample.model_fields.items():
        kind = _scalar_type(field.annotation)
        if kind in scalars:
            schema[name] = scalars[kind]
    return schema


def _scalar_type(annotation: Any) -> type | None:
    """str for `str`, `str | None` and string literals; None for containers."""
    origin = get_origin(annotation)
    if origin is Literal:
        return str
    if origin in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar_type(options[0]) if len(options) == 1 else None
    return annotation if origin is None else None

"""The Great Expectations suite that judges a version's sample table before it is published.

The table is every sample of the version, already labelled by the publish policy (`split` column,
see `tessy_core.quality.policy.split_by_policy`). Row-level content checks apply to the published
`train` rows; the pass rate is measured over every sample that generated. Checks that GX cannot
express on the raw columns (one closed thinking block, the verdict inside the `verification`
struct) are first computed into plain columns, so GX stays the engine that judges them.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import polars as pl
from pydantic import Field

from tessy_core.quality.bounds import LengthBounds, ShareBand
from tessy_core.quality.style import StyleGate, StyleReport
from tessy_core.rows import validated_columns
from tessy_core.strict import Strict

TRAIN = "train"
REJECTED = "rejected"

# Columns computed before validation; GX reads them like any other column.
THINKING_BLOCK_OK = "checksingle_closed_thinking_block"
VERDICT = "check_verdict"
MISSING_VERDICT = "missing"
# Each sample's outcome as the catalog will count it: published (train), rejected, failed (generation).
OUTCOME = "check_outcome"

# The staged row's validated columns (tessy_core.rows.StagedSample) and the policy's label.
DEFAULT_REQUIRED_COLUMNS: tuple[str, ...] = (*validated_columns(), "split")

_SUITE_NAME = "tessy_version_samples"


class ValidationPolicy(Strict):
    """What a version must satisfy, and what happens when it does not."""

    required_columns: tuple[str, ...] = DEFAULT_REQUIRED_COLUMNS
    # The student's thinking markers as they appear in the assistant text.
    think_open: str = "<think>"
    think_close: str = "</think>"
    thinking_chars: LengthBounds = LengthBounds(min_chars=1, max_chars=400_000)
    answer_chars: LengthBounds = LengthBounds(min_chars=1, max_chars=100_000)
    teacher_share_band: ShareBand = ShareBand()
    interleaved_mode: str = Field("tessy", description="the mode whose samples the teacher share band applies to")
    min_pass_rate: float = Field(0.3, ge=0.0, le=1.0, description="share of generated samples verified as accepted")
    # A build where many samples never finished generating (thinking cap, repetition, a dying server)
    # or most finished ones are thrown away is not healthy, even when what is left passes every check.
    max_failed_share: float = Field(
        0.25, ge=0.0, le=1.0, description="share of all samples whose generation failed; 1: not checked"
    )
    max_rejected_share: float = Field(
        0.8, ge=0.0, le=1.0,
        description="share of all samples that generated but were rejected (verdict, format, style); 1: not "
        "checked. Above 1 - min_pass_rate it never fires alone under verified_only",
    )
    accepted_verdict: str = "accepted"
    min_published_rows: int = Field(1, ge=0)
    on_failure: Literal["block", "publish_with_warnings"] = "block"
    publish: Literal["all_with_verdicts", "verified_only"] = "verified_only"
    style: StyleGate | None = Field(None, description="style-consistency gate (tessy_core.quality.style); None: off")


class ExpectationOutcome(Strict):
    """One expectation's verdict, flattened from the GX result for reports and tests."""

    check: str
    expectation: str
    column: str | None
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    unexpected_examples: list[Any] = Field(default_factory=list)
    error: str | None = None
    observed: str | None = Field(None, description="what was measured, for people (e.g. '60.0% failed (24/40)')")
    threshold: str | None = Field(None, description="what the check asks, for people (e.g. '<= 25%')")


class SuiteResult(Strict):
    success: bool
    on_failure: Literal["block", "publish_with_warnings"]
    outcomes: list[ExpectationOutcome]
    gx_result: dict[str, Any] = Field(description="the GX validation result JSON, stored with the version")
    summary_markdown: str

    @property
    def blocks_publish(self) -> bool:
        return not self.success and self.on_failure == "block"

    @property
    def failed_checks(self) -> list[str]:
        return [outcome.check for outcome in self.outcomes if not outcome.success]

    def outcome(self, check: str) -> ExpectationOutcome:
        for outcome in self.outcomes:
            if outcome.check == check:
                return outcome
        raise KeyError(f"no check named {check!r} in this suite (checks: {[o.check for o in self.outcomes]})")


def build_suite(policy: ValidationPolicy):
    """The GX expectation suite for `policy`; every expectation names its check in `meta.check`."""
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    expect = gx.expectations
    published = Column("split") == TRAIN
    generated = Column("status") == "ok"
    interleaved = published & (Column("mode") == policy.interleaved_mode)
    checks: list[tuple[str, Any]] = [
        ("schema", expect.ExpectTableColumnsToMatchSet(column_set=list(policy.required_columns), exact_match=False)),
        ("sample_id_not_null", expect.ExpectColumnValuesToNotBeNull(column="sample_id")),
        ("sample_id_unique", expect.ExpectColumnValuesToBeUnique(column="sample_id")),
        ("split_labelled", expect.ExpectColumnValuesToBeInSet(column="split", value_set=[TRAIN, REJECTED])),
        (
            "published_not_empty",
            expect.ExpectTableRowCountToBeBetween(min_value=policy.min_published_rows, row_condition=published),
        ),
        (
            "no_failed_sample_published",
            expect.ExpectColumnValuesToBeInSet(column="status", value_set=["ok"], row_condition=published),
        ),
        (
            "single_closed_thinking_block",
            expect.ExpectColumnValuesToBeInSet(column=THINKING_BLOCK_OK, value_set=[True], row_condition=published),
        ),
        ("answer_not_null", expect.ExpectColumnValuesToNotBeNull(column="answer", row_condition=published)),
        (
            "answer_not_empty",
            expect.ExpectColumnValuesToMatchRegex(column="answer", regex=r"\S", row_condition=published),
        ),
        ("thinking_length", _length_expectation(expect, "thinking", policy.thinking_chars, published)),
        ("answer_length", _length_expectation(expect, "answer", policy.answer_chars, published)),
        (
            "teacher_share_band",
            expect.ExpectColumnValuesToBeBetween(
                column="teacher_token_share",
                min_value=policy.teacher_share_band.low,
                max_value=policy.teacher_share_band.high,
                mostly=policy.teacher_share_band.mostly,
                row_condition=interleaved,
            ),
        ),
    ]
    if policy.min_pass_rate > 0:
        checks.append(
            (
                "pass_rate",
                # `mostly` is the pass rate threshold. GX leaves nulls out of `mostly`, which is why the
                # verdict column is filled before validation: a missing verdict counts as not accepted.
                expect.ExpectColumnValuesToBeInSet(
                    column=VERDICT,
                    value_set=[policy.accepted_verdict],
                    mostly=policy.min_pass_rate,
                    row_condition=generated,
                ),
            )
        )
    for check, outcome, limit in (
        ("failed_share", "failed", policy.max_failed_share),
        ("rejected_share", "rejected", policy.max_rejected_share),
    ):
        if limit < 1:
            # `mostly` is the share that must not be `outcome`: at most `limit` of all samples may be.
            checks.append(
                (
                    check,
                    expect.ExpectColumnValuesToNotBeInSet(
                        column=OUTCOME, value_set=[outcome], mostly=round(1.0 - limit, 10)
                    ),
                )
            )
    if policy.publish == "verified_only":
        checks.append(
            (
                "published_verified",
                expect.ExpectColumnValuesToBeInSet(
                    column=VERDICT, value_set=[policy.accepted_verdict], row_condition=published
                ),
            )
        )
    suite = gx.ExpectationSuite(name=_SUITE_NAME)
    for check, expectation in checks:
        expectation.meta = {"check": check}
        suite.add_expectation(expectation)
    return suite


def _length_expectation(expect, column: str, bounds: LengthBounds, row_condition):
    return expect.ExpectColumnValueLengthsToBeBetween(
        column=column, min_value=bounds.min_chars, max_value=bounds.max_chars, row_condition=row_condition
    )


def with_derived_checks(df: pl.DataFrame, policy: ValidationPolicy) -> pl.DataFrame:
    """`df` plus the plain columns the suite reads for checks GX can't express on the raw ones."""
    derived: list[pl.Expr] = []
    if "assistant" in df.columns:
        derived.append(single_closed_thinking_block(pl.col("assistant"), policy).alias(THINKING_BLOCK_OK))
    verdict = (
        pl.col("verification").struct.field("verdict").cast(pl.Utf8)
        if "verification" in df.columns and isinstance(df.schema["verification"], pl.Struct)
        else pl.lit(None, dtype=pl.Utf8)
    )
    derived.append(verdict.fill_null(MISSING_VERDICT).alias(VERDICT))
    if "status" in df.columns and "split" in df.columns:
        outcome = (
            pl.when(pl.col("status") != "ok").then(pl.lit("failed"))
            .when(pl.col("split") == TRAIN).then(pl.lit("published"))
            .otherwise(pl.lit("rejected"))
        )
        derived.append(outcome.alias(OUTCOME))
    else:  # the schema check reports the missing column; the share checks then see no outcome
        derived.append(pl.lit(None, dtype=pl.Utf8).alias(OUTCOME))
    return df.with_columns(derived)


def single_closed_thinking_block(assistant: pl.Expr, policy: ValidationPolicy) -> pl.Expr:
    """The assistant text opens with the thinking marker, and opens and closes exactly one block."""
    opened = assistant.str.count_matches(policy.think_open, literal=True)
    closed = assistant.str.count_matches(policy.think_close, literal=True)
    close_after_open = assistant.str.find(policy.think_close, literal=True) > assistant.str.find(
        policy.think_open, literal=True
    )
    return (
        (opened == 1) & (closed == 1) & assistant.str.starts_with(policy.think_open) & close_after_open
    ).fill_null(False)


def run_suite(df: pl.DataFrame, policy: ValidationPolicy) -> SuiteResult:
    """Validate a version's split-labelled sample table against `policy` (see the module doc)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("version_samples")
        .add_dataframe_asset("samples")
        .add_batch_definition_whole_dataframe("whole_table")
    )
    suite = context.suites.add(build_suite(policy))
    frame = with_derived_checks(df, policy).to_pandas()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    gx_result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    outcomes = [_outcome(result) for result in gx_result["results"]]
    success = bool(gx_result["success"])
    return SuiteResult(
        success=success,
        on_failure=policy.on_failure,
        outcomes=outcomes,
        gx_result=gx_result,
        summary_markdown=_summary_markdown(success, policy, outcomes, rows=df.height),
    )


def _outcome(result: dict[str, Any]) -> ExpectationOutcome:
    config = result["expectation_config"]
    details = result.get("result") or {}
    # GX gives either one {"raised_exception", "exception_message", ...} dict or a dict of them.
    info = result.get("exception_info") or {}
    infos = [info] if "raised_exception" in info else [i for i in info.values() if isinstance(i, dict)]
    errors = [i.get("exception_message") or "unknown error" for i in infos if i.get("raised_exception")]
    check = (config.get("meta") or {}).get("check", config["type"])
    observed, threshold = describe(check, config["type"], config["kwargs"], details)
    return ExpectationOutcome(
        check=check,
        expectation=config["type"],
        column=config["kwargs"].get("column"),
        success=bool(result["success"]),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        observed_value=details.get("observed_value"),
        unexpected_examples=list(details.get("partial_unexpected_list") or [])[:5],
        error="; ".join(dict.fromkeys(errors)) or None,
        observed=observed,
        threshold=threshold,
    )


# Checks whose figure is the share of rows that are *not* as expected (the failed share), or that are
# (the pass rate): said as a share, not as "k unexpected".
_UNEXPECTED_SHARE = {"failed_share": "failed", "rejected_share": "rejected"}
_EXPECTED_SHARE = {"pass_rate": "accepted"}


def describe(check: str, expectation: str, kwargs: dict[str, Any], details: dict[str, Any]) -> tuple[str | None, str | None]:
    """(observed, threshold) of one GX result in words: every validation row says what was measured
    and what the check asks, not only whether it passed."""
    total = details.get("element_count")
    bad = details.get("unexpected_count")
    mostly = kwargs.get("mostly")
    if expectation == "expect_table_columns_to_match_set":
        required = list(kwargs.get("column_set") or [])
        present = set(details.get("observed_value") or [])
        missing = [c for c in required if c not in present]
        observed = f"missing: {', '.join(missing)}" if missing else f"all {len(required)} present"
        return observed, f"{len(required)} required columns"
    if expectation == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        threshold = f">= {low} rows" if high is None else f"{low}-{high} rows"
        return f"{details.get('observed_value')} rows", threshold
    if total is None or bad is None:
        return (None if details.get("observed_value") is None else str(details.get("observed_value"))), None
    if check in _UNEXPECTED_SHARE:
        share = bad / total if total else 0.0
        return (f"{share:.1%} {_UNEXPECTED_SHARE[check]} ({bad}/{total})",
                f"<= {_percent(1.0 - (mostly if mostly is not None else 1.0))}")
    if check in _EXPECTED_SHARE:
        good = total - bad
        share = good / total if total else 0.0
        return (f"{share:.1%} {_EXPECTED_SHARE[check]} ({good}/{total})",
                f">= {_percent(mostly if mostly is not None else 1.0)}")
    rows = f"{total} row{'s' if total != 1 else ''}"
    observed = f"{bad} of {rows} outside" if bad else f"all {rows} meet it"
    if bad and details.get("partial_unexpected_list"):
        observed += f", e.g. {_short(details['partial_unexpected_list'][:2])}"
    if expectation == "expect_column_values_to_not_be_null":
        threshold = "no nulls"
    elif expectation == "expect_column_values_to_be_unique":
        threshold = "all unique"
    elif expectation in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = ", ".join(str(v) for v in kwargs.get("value_set") or [])
        threshold = ("in {" if expectation.endswith("_be_in_set") else "not in {") + values + "}"
    elif expectation == "expect_column_value_lengths_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        threshold = f"{low}-{high} chars" if high is not None else f">= {low} chars"
    elif expectation == "expect_column_values_to_be_between":
        threshold = f"in [{kwargs.get('min_value'):g}, {kwargs.get('max_value'):g}]"
    elif expectation == "expect_column_values_to_match_regex":
        threshold = f"matches {kwargs.get('regex')}"
    else:
        threshold = None
    if mostly is not None and mostly < 1 and threshold:
        threshold += f" for >= {_percent(mostly)} of rows"
    return observed, threshold


def _percent(share: float) -> str:
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _short(values: list[Any], limit: int = 60) -> str:
    text = repr(values)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary_markdown(success: bool, policy: ValidationPolicy, outcomes: list[ExpectationOutcome], rows: int) -> str:
    passed = sum(outcome.success for outcome in outcomes)
    if success:
        verdict = "PASSED"
    else:
        verdict = "FAILED: publishing blocked" if policy.on_failure == "block" else "FAILED: publishing with warnings"
    lines = [
        f"### Sample validation {verdict}",
        "",
        f"{passed}/{len(outcomes)} expectations met over {rows} samples (publish: `{policy.publish}`).",
        "",
    ]
    lines += outcome_table(outcomes)
    return "\n".join(lines)


def outcome_table(outcomes: list[ExpectationOutcome]) -> list[str]:
    """Markdown rows: check, verdict, observed value, threshold (failed checks first)."""
    lines = ["| check | verdict | observed | threshold |", "|---|---|---|---|"]
    ordered = sorted(outcomes, key=lambda o: o.success)
    lines += [
        f"| {o.check} | {'ok' if o.success else '**FAILED**'} | {_observed_cell(o)} | {_cell(o.threshold or '-')} |"
        for o in ordered
    ]
    return lines


def _observed_cell(outcome: ExpectationOutcome) -> str:
    if outcome.error:
        return _cell(f"error: {outcome.error}")
    if outcome.observed is not None:
        return _cell(outcome.observed)
    return _cell("-" if outcome.observed_value is None else repr(outcome.observed_value))


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def with_style(suite: SuiteResult, style: StyleReport | None) -> SuiteResult:
    """The suite's result with the style gate's checks folded in (as `style_<check>` outcomes), so
    one result decides the publish and carries every reason."""
    if style is None:
        return suite
    outcomes = [
        ExpectationOutcome(check=f"style_{check.check}", expectation="tessy_style_gate", column=None,
                           success=check.success, observed_value=check.observed,
                           error=None if check.observed is not None else check.detail,
                           observed=None if check.observed is None else f"{check.observed:.4g}",
                           threshold=check.threshold)
        for check in style.checks
    ]
    blocks = not style.success and style.on_failure == "block"
    return suite.model_copy(update={
        "success": suite.success and style.success,
        "on_failure": "block" if blocks else suite.on_failure,
        "outcomes": [*suite.outcomes, *outcomes],
        "gx_result": {**suite.gx_result, "tessy_style": style.model_dump(mode="json", exclude={"samples"})},
        "summary_markdown": f"{suite.summary_markdown}\n\n{style.summary_markdown}",
    })

"""Which samples a version publishes (`train`) and which go to the `rejected` split, with why.

Nothing is dropped: every sample ends up in exactly one split, and each rejected one carries its
reasons in `rejection_reason` ("; "-joined, most fundamental first). The GX suite then checks the
labelled table (nothing failed, malformed or unverified inside `train`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from tessy_core.quality.expectations import REJECTED, TRAIN, ValidationPolicy, single_closed_thinking_block

REASON_SEPARATOR = "; "


def _verdict(frame: pl.DataFrame) -> pl.Expr:
    if isinstance(frame.schema.get("verification"), pl.Struct):
        return pl.col("verification").struct.field("verdict").cast(pl.String)
    return pl.lit(None, pl.String)


def _reason(condition: pl.Expr, text: pl.Expr | str) -> pl.Expr:
    text = pl.lit(text) if isinstance(text, str) else text
    return pl.when(condition.fill_null(True)).then(text).otherwise(pl.lit(None, pl.String))


def split_by_policy(frame: pl.DataFrame, policy: ValidationPolicy,
                    extra_reasons: Mapping[str, Sequence[str]] | None = None) -> pl.DataFrame:
    """`frame` with `split` (train/rejected) and `rejection_reason` (null for published rows).

    Reasons, in order: the generation failed; the assistant text is malformed (not exactly one
    closed thinking block, empty answer); the verdict is not accepted (`verified_only` only);
    then `extra_reasons` by `sample_id` (e.g. a per-sample style gate). A failed generation gets
    only its own reason: the rest would follow from it.
    """
    columns = frame.columns
    if "status" not in columns:
        raise ValueError("the sample table has no 'status' column (ok/failed per sample)")
    generated = pl.col("status") == "ok"
    reasons: list[pl.Expr] = []
    if "assistant" in columns:
        reasons.append(_reason(~single_closed_thinking_block(pl.col("assistant"), policy),
                               "format: not exactly one closed thinking block"))
    if "answer" in columns:
        reasons.append(_reason(~pl.col("answer").str.contains(r"\S"), "format: empty answer"))
    if policy.publish == "verified_only":
        verdict = _verdict(frame)
        reasons.append(_reason(verdict != policy.accepted_verdict,
                               pl.lit("verification: ") + verdict.fill_null("missing")))
    if extra_reasons:
        if "sample_id" not in columns:
            raise ValueError("extra rejection reasons are keyed by sample_id, which the table lacks")
        extra = {sample_id: REASON_SEPARATOR.join(texts) for sample_id, texts in extra_reasons.items() if texts}
        reasons.append(pl.col("sample_id").replace_strict(extra, default=None, return_dtype=pl.String))
    failure_reason = pl.col("failure_reason") if "failure_reason" in columns else pl.lit(None, pl.String)
    failed = pl.lit("generation failed: ") + failure_reason.fill_null("unknown")
    joined = pl.concat_str(reasons, separator=REASON_SEPARATOR, ignore_nulls=True) if reasons else pl.lit("")
    reason = (
        pl.when(~generated.fill_null(False)).then(failed)
        .when(joined != "").then(joined)
        .otherwise(pl.lit(None, pl.String))
    )
    labelled = frame.with_columns(reason.alias("rejection_reason"))
    return labelled.with_columns(
        pl.when(pl.col("rejection_reason").is_null()).then(pl.lit(TRAIN)).otherwise(pl.lit(REJECTED)).alias("split")
    )


def split_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Rows per split of a labelled table (both splits always present)."""
    counts = dict(frame.group_by("split").len().iter_rows())
    return {TRAIN: counts.get(TRAIN, 0), REJECTED: counts.get(REJECTED, 0)}

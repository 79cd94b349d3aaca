"""The publish policy: every sample lands in exactly one split, rejected ones with their reasons."""

from __future__ import annotations

import polars as pl
import pytest

from tessy_core.quality.expectations import ValidationPolicy
from tessy_core.quality.policy import split_by_policy, split_counts
from tests.quality.samples import frame, good_rows, row

VERIFIED_ONLY = ValidationPolicy(publish="verified_only")
EVERYTHING = ValidationPolicy(publish="all_with_verdicts")


def mixed_rows():
    return [
        row(0),
        row(1, verdict="wrong_answer"),
        row(2, status="failed", failure_reason="repetition: loop", verdict=None),
        row(3, verdict=None),
        row(4, answer=" \n", assistant="<think>\nx\n</think>\n\n \n"),
        row(5, assistant="no thinking block"),
        row(6, assistant="<think>\nx\n</think>\n\nans", verdict="time_limit"),
    ]


def test_verified_only_publishes_only_accepted_well_formed_samples():
    labelled = split_by_policy(frame(mixed_rows()), VERIFIED_ONLY)
    assert labelled.height == 7  # nothing dropped
    assert labelled["split"].to_list() == ["train"] + ["rejected"] * 6
    assert labelled["rejection_reason"].to_list() == [
        None,
        "verification: wrong_answer",
        "generation failed: repetition: loop",
        "verification: missing",
        "format: empty answer",
        "format: not exactly one closed thinking block",
        "verification: time_limit",
    ]
    assert split_counts(labelled) == {"train": 1, "rejected": 6}


def test_keep_everything_with_verdicts_still_rejects_what_cannot_train():
    labelled = split_by_policy(frame(mixed_rows()), EVERYTHING)
    assert labelled["split"].to_list() == ["train", "train", "rejected", "train", "rejected", "rejected", "train"]
    assert labelled["verification"].struct.field("verdict").to_list()[1] == "wrong_answer"  # verdict kept


def test_several_reasons_are_all_given():
    rows = [row(0, answer="", assistant="bad", verdict="runtime_error")]
    reason = split_by_policy(frame(rows), VERIFIED_ONLY)["rejection_reason"][0]
    assert reason == "format: not exactly one closed thinking block; format: empty answer; verification: runtime_error"


def test_extra_reasons_by_sample_id():
    labelled = split_by_policy(frame(good_rows(3)), EVERYTHING,
                               extra_reasons={"s0001": ["style: student NLL 4.10 above 3.00"], "s0002": []})
    assert labelled["split"].to_list() == ["train", "rejected", "train"]
    assert labelled["rejection_reason"][1] == "style: student NLL 4.10 above 3.00"


def test_minimal_tables_and_clear_errors():
    minimal = pl.DataFrame({"status": ["ok", "failed"], "failure_reason": [None, None]})
    labelled = split_by_policy(minimal, EVERYTHING)
    assert labelled["split"].to_list() == ["train", "rejected"]
    assert labelled["rejection_reason"][1] == "generation failed: unknown"
    assert split_by_policy(minimal, VERIFIED_ONLY)["rejection_reason"][0] == "verification: missing"
    with pytest.raises(ValueError, match="sample_id"):
        split_by_policy(minimal, EVERYTHING, extra_reasons={"x": ["y"]})


def test_custom_thinking_markers():
    policy = ValidationPolicy(publish="all_with_verdicts", think_open="<reasoning>", think_close="</reasoning>")
    rows = [row(0, assistant="<reasoning>a</reasoning>b"), row(1)]
    assert split_by_policy(frame(rows), policy)["split"].to_list() == ["train", "rejected"]

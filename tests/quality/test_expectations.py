"""The GX suite: a good version passes; each expectation fails on the defect it exists for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from tessy_core.quality.expectations import LengthBounds, ShareBand, ValidationPolicy, run_suite
from tessy_core.quality.policy import split_by_policy
from tests.quality.samples import frame, good_rows, row

pytestmark = pytest.mark.slow  # GX import and validation: ~10 s unloaded, a minute on a busy 2-core box
POLICY = ValidationPolicy()


def labelled(rows: list[dict[str, Any]], split: list[str] | None = None) -> pl.DataFrame:
    df = frame(rows)
    if split is None:
        return split_by_policy(df, POLICY)
    return df.with_columns(pl.Series("split", split))


def test_a_good_version_passes_and_its_result_is_storable():
    result = run_suite(labelled(good_rows()), POLICY)
    assert result.success, result.summary_markdown
    assert not result.blocks_publish
    checks = {outcome.check for outcome in result.outcomes}
    assert checks == {
        "schema", "sample_id_not_null", "sample_id_unique", "split_labelled", "published_not_empty",
        "no_failed_sample_published", "single_closed_thinking_block", "answer_not_null", "answer_not_empty",
        "thinking_length", "answer_length", "teacher_share_band", "pass_rate", "failed_share", "rejected_share",
        "published_verified",
    }
    stored = json.loads(json.dumps(result.gx_result))
    assert stored["success"] is True and len(stored["results"]) == len(checks)
    assert "PASSED" in result.summary_markdown


def _set(index: int, **changes: Any) -> Callable[[list[dict]], list[dict]]:
    def mutate(rows: list[dict]) -> list[dict]:
        rows[index] = {**rows[index], **changes}
        return rows
    return mutate


def _split(split: list[str]) -> Callable[[list[dict]], tuple[list[dict], list[str]]]:
    return lambda rows: (rows, split)


N = 8
# check -> (mutation of 8 good rows, optional explicit split labels, policy overrides)
DEFECTS: dict[str, tuple[Callable, list[str] | None, dict[str, Any]]] = {
    "schema": (lambda rows: [{k: v for k, v in r.items() if k != "spans"} for r in rows], None, {}),
    "sample_id_not_null": (_set(3, sample_id=None), None, {}),
    "sample_id_unique": (_set(3, sample_id="s0000"), None, {}),
    "split_labelled": (lambda rows: rows, ["train"] * (N - 1) + ["dev"], {}),
    "published_not_empty": (lambda rows: rows, ["rejected"] * N, {"max_rejected_share": 1.0}),
    "no_failed_sample_published": (_set(2, status="failed", failure_reason="repetition"), ["train"] * N, {}),
    "single_closed_thinking_block": (
        _set(1, assistant="<think>\nhalf</think>\nmore</think>\n\nanswer"), ["train"] * N, {}),
    "answer_not_null": (_set(1, answer=None), ["train"] * N, {}),
    "answer_not_empty": (_set(1, answer="  \n "), ["train"] * N, {}),
    "thinking_length": (_set(4, thinking="x" * 300), None, {"thinking_chars": LengthBounds(min_chars=1, max_chars=200)}),
    "answer_length": (_set(4, answer="y" * 300), None, {"answer_chars": LengthBounds(min_chars=1, max_chars=200)}),
    "teacher_share_band": (_set(5, teacher_token_share=0.99), None, {"teacher_share_band": ShareBand(low=0.5, high=0.9)}),
    "pass_rate": (
        lambda rows: [r if i < 2 else {**r, "verification": {"verdict": "wrong_answer", "passed": 0, "total": 1}}
                      for i, r in enumerate(rows)], None, {"min_pass_rate": 0.3}),
    "published_verified": (_set(6, verification={"verdict": "time_limit", "passed": 0, "total": 1}), ["train"] * N, {}),
    "failed_share": (
        lambda rows: [{**r, "status": "failed", "failure_reason": "thinking_token_cap"} if i < 3 else r
                      for i, r in enumerate(rows)], None, {"max_failed_share": 0.25}),
    "rejected_share": (
        lambda rows: [{**r, "answer": " "} if i < 3 else r for i, r in enumerate(rows)], None,
        {"max_rejected_share": 0.25}),
}


@pytest.mark.parametrize("check", sorted(DEFECTS))
def test_each_expectation_fails_on_its_defect(check):
    mutate, split, overrides = DEFECTS[check]
    policy = POLICY.model_copy(update=overrides)
    rows = mutate(good_rows(N))
    df = frame(rows)
    df = split_by_policy(df, policy) if split is None else df.with_columns(pl.Series("split", split))
    result = run_suite(df, policy)
    assert not result.success
    assert result.failed_checks == [check], result.summary_markdown
    assert result.blocks_publish
    assert "**FAILED**" in result.summary_markdown and "FAILED: publishing blocked" in result.summary_markdown
    failed = result.outcome(check)
    assert failed.error is None, failed.error
    # Every row says what was measured against what: the failed one is in the table with both.
    assert failed.observed and failed.threshold, failed
    assert f"| {check} | **FAILED** | {failed.observed} | {failed.threshold} |" in result.summary_markdown


def test_share_checks_say_the_observed_share_against_the_threshold():
    rows = good_rows(N)
    for i in range(5):  # 5 of 8 never finished generating: 62.5% failed
        rows[i] = {**rows[i], "status": "failed", "failure_reason": "thinking_token_cap"}
    policy = POLICY.model_copy(update={"max_failed_share": 0.25, "max_rejected_share": 0.5})
    result = run_suite(split_by_policy(frame(rows), policy), policy)
    assert result.failed_checks == ["failed_share"], result.summary_markdown
    failed = result.outcome("failed_share")
    assert (failed.observed, failed.threshold) == ("62.5% failed (5/8)", "<= 25%")
    rejected = result.outcome("rejected_share")
    assert rejected.success and (rejected.observed, rejected.threshold) == ("0.0% rejected (0/8)", "<= 50%")
    # The pass rate counts generated samples (3 of 3 accepted); the failures are the failed share's.
    assert result.outcome("pass_rate").observed == "100.0% accepted (3/3)"
    assert result.outcome("pass_rate").threshold == ">= 30%"
    assert result.outcome("schema").observed == f"all {len(POLICY.required_columns)} present"
    # The failed check leads the table.
    table = result.summary_markdown.split("| check | verdict | observed | threshold |")[1]
    assert table.strip().splitlines()[1].startswith("| failed_share | **FAILED** | 62.5% failed (5/8) | <= 25% |")


def test_share_thresholds_of_one_turn_the_share_checks_off():
    policy = POLICY.model_copy(update={"max_failed_share": 1.0, "max_rejected_share": 1.0})
    rows = [{**r, "status": "failed", "failure_reason": "repetition"} if i else r for i, r in enumerate(good_rows(N))]
    result = run_suite(split_by_policy(frame(rows), policy), policy)
    assert result.success and not {"failed_share", "rejected_share"} & {o.check for o in result.outcomes}


def test_the_same_defects_pass_once_the_policy_moves_them_to_rejected():
    rows = good_rows(N)
    rows[1] = {**rows[1], "answer": "  "}
    rows[2] = {**rows[2], "status": "failed", "failure_reason": "repetition"}
    rows[3] = {**rows[3], "assistant": "no thinking block at all"}
    rows[4] = {**rows[4], "verification": {"verdict": "wrong_answer", "passed": 0, "total": 1}}
    result = run_suite(split_by_policy(frame(rows), POLICY), POLICY)
    assert result.success, result.summary_markdown


def test_publish_with_warnings_does_not_block():
    policy = POLICY.model_copy(update={"on_failure": "publish_with_warnings"})
    result = run_suite(labelled(good_rows(), ["rejected"] * N), policy)
    assert not result.success and not result.blocks_publish
    assert "FAILED: publishing with warnings" in result.summary_markdown


def test_missing_verdicts_count_against_the_pass_rate():
    rows = [row(i, verdict=None) if i >= 2 else row(i) for i in range(N)]
    policy = POLICY.model_copy(update={"publish": "all_with_verdicts", "min_pass_rate": 0.5})
    result = run_suite(split_by_policy(frame(rows), policy), policy)
    assert result.failed_checks == ["pass_rate"]
    assert "published_verified" not in {o.check for o in result.outcomes}


def test_a_table_without_any_verification_fails_the_pass_rate():
    rows = [{k: v for k, v in row(i).items() if k != "verification"} for i in range(N)]
    policy = POLICY.model_copy(update={"publish": "all_with_verdicts",
                                       "required_columns": tuple(c for c in POLICY.required_columns if c != "verification")})
    result = run_suite(split_by_policy(frame(rows), policy), policy)
    assert result.failed_checks == ["pass_rate"]


def test_pass_rate_threshold_zero_disables_the_check():
    policy = POLICY.model_copy(update={"min_pass_rate": 0.0, "publish": "all_with_verdicts"})
    rows = [row(i, verdict="wrong_answer") for i in range(N)]
    result = run_suite(split_by_policy(frame(rows), policy), policy)
    assert result.success and "pass_rate" not in {o.check for o in result.outcomes}


def test_the_share_band_applies_to_interleaved_samples_only():
    rows = [row(i, mode="teacher_only", teacher_token_share=1.0) if i % 2 else row(i) for i in range(N)]
    assert run_suite(split_by_policy(frame(rows), POLICY), POLICY).success


def test_share_band_mostly_tolerates_a_few_outliers():
    rows = good_rows(N)
    rows[0] = {**rows[0], "teacher_token_share": 0.2}
    strict = run_suite(split_by_policy(frame(rows), POLICY), POLICY)
    assert strict.failed_checks == ["teacher_share_band"]
    lenient = POLICY.model_copy(update={"teacher_share_band": ShareBand(low=0.5, high=0.9, mostly=0.8)})
    assert run_suite(split_by_policy(frame(rows), lenient), lenient).success


def test_bad_policies_are_rejected():
    with pytest.raises(ValueError, match="below low"):
        ShareBand(low=0.8, high=0.2)
    with pytest.raises(ValueError, match="below min_chars"):
        LengthBounds(min_chars=10, max_chars=5)
    with pytest.raises(ValueError):
        ValidationPolicy(min_pass_rate=1.5)
    with pytest.raises(ValueError):
        ValidationPolicy(unknown_setting=True)

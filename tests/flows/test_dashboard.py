"""What a build shows a data team, without a Prefect server: names, tags, shard states, the report's
headline, the trend chart and the links (tests/flows/test_ui_chromium.py checks them in a real UI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.build import BLOCKED, COMPLETED_WITH_FAILURES, final_state
from flows.dashboard import run_name, run_tags, shard_message, shard_state
from tessy_core.builder import report
from tessy_core.builder.pipeline import BuildResult, ShardSummary, ShardTally
from tessy_core.quality.expectations import ValidationPolicy

from tests.builder.helpers import build_config

MODELS = {"teacher": Path("/models/teacher"), "student": Path("/models/student")}


def _blocked() -> BuildResult:
    return BuildResult(
        build_id="ds-0123456789ab", dataset="ds", status="blocked",
        message="validation failed (failed_share); nothing published",
        counts={"published": 0, "rejected": 16, "failed": 24, "pending": 0},
        reasons={"failed": {"generation failed: thinking_token_cap": 24}},
        examples={"failed": {"generation failed: thinking_token_cap": ["s1", "s2", "s3", "s4", "s5"]}},
        figures={"samples": 40, "generated": 16, "published": 16, "pass_rate": 1.0, "pass_rate_all": 0.4,
                 "pass_rate_published": 1.0, "publish_rate": 0.4, "verdicts": {"accepted": 16},
                 "teacher_token_share_mean": 0.71, "style": {"student_nll_mean": 1.25, "tfidf_similarity_mean": 0.62,
                                                             "style_token_rate_mean": 0.3}},
        usage={"teacher": {"requests": 400, "tokens_generated": 8000}, "student": {"requests": 900, "tokens_generated": 4000}},
        servers={"teacher": {"model_id": "t@r", "endpoints": ["http://gpu1:8000/v1"], "requests": 410,
                             "prompt_tokens": 90000, "completion_tokens": 8100, "errors": 2, "failovers": 1}},
        validation={"success": False, "failed_checks": ["failed_share"], "checks": [
            {"check": "pass_rate", "success": True, "observed": "100.0% accepted (16/16)", "threshold": ">= 30%"},
            {"check": "failed_share", "success": False, "observed": "60.0% failed (24/40)", "threshold": "<= 25%"},
            {"check": "teacher_share_band", "success": True, "observed": "all 16 rows meet it",
             "threshold": "in [0.5, 0.9]"},
        ]},
        rejected_uri="file:///work/ds-0123456789ab/rejected.parquet",
    )


def test_a_blocked_build_reads_as_blocked_from_its_first_line():
    result = _blocked()
    text = report.report_markdown(result)
    head = text.split("## Validation")[0]
    assert text.startswith("# ds: BLOCKED\n\n**Nothing was published.**")
    assert "failed_share 60.0% failed (24/40) vs <= 25%" in head
    assert "| failed | 24 (60.0%; check <= 25%) |" in head
    assert "| pass rate on hidden tests, all samples | 0.40 (16/40) |" in head
    assert "| pass rate, samples that finished generating | 1.00 (16/16; check >= 30%) |" in head
    assert "0.71 (each sample in [0.5, 0.9])" in head
    assert "| style: student NLL (mean, lower is more student-like) | 1.25 |" in head
    # No sample published: the cost table gives totals and says so instead of dividing by zero.
    assert "Cost in all (nothing published):" in head
    assert "| teacher | 400 | 8,000 | 90,000 | 8,100 |" in head and "| student | 900 | 4,000 | - | - |" in head
    # Failed checks lead the validation table; the failures table names sample ids and the Parquet.
    table = text.split("## Validation: 2/3 checks met")[1]
    assert table.split("\n")[4].startswith("| failed_share | **FAILED** | 60.0% failed (24/40) | <= 25% |")
    assert "- generation failed: thinking_token_cap: `s1`, `s2`, `s3`, `s4`, `s5`" in text
    assert "rejected.parquet" in text

    state = final_state(result)
    assert state.is_failed() and state.name == BLOCKED
    assert state.message == ("ds: BLOCKED; 0 published (0.0%), 16 rejected (40.0%), 24 failed (60.0%) of 40 "
                             "samples; failed checks: failed_share 60.0% failed (24/40) vs <= 25%")


def test_publishing_past_failed_checks_is_not_a_plain_completion():
    result = _blocked().model_copy(update={"status": "published", "version": "ds@v3", "version_number": 3})
    state = final_state(result)
    assert state.is_completed() and state.name == COMPLETED_WITH_FAILURES
    clean = result.model_copy(update={"validation": {"success": True, "checks": []}})
    assert final_state(clean).name == "Completed" and final_state(clean).message.startswith("ds@v3: published;")


def test_runs_are_named_and_tagged_for_what_they_build(tmp_path):
    config = build_config(tmp_path, MODELS, dataset="ds")
    assert run_name(config, 3) == "ds@v3"
    assert run_name(config, 3, _blocked()) == "ds@v3 (blocked)"
    tags = run_tags(config, 3, _blocked())
    assert tags[:5] == ["dataset:ds", "version:none", "teacher:tiny-teacher", "student:tiny-student", "mode:tessy"]
    assert tags[5].startswith("config:") and len(tags[5]) == len("config:") + 12 and tags[6] == "status:blocked"
    assert "version:v3" in run_tags(config, 3)


def test_a_shard_past_the_failed_share_says_so_in_its_state():
    policy = ValidationPolicy(max_failed_share=0.25)
    tally = ShardTally(publishable=5, rejected=2, failed=9, retried=3,
                       reasons={"failed": {"generation failed: thinking_token_cap": 9},
                                "rejected": {"verification: wrong_answer": 2}})
    summary = ShardSummary(shard_id="shard-00003", samples=16, skipped=False, tally=tally)
    state = shard_state(summary, policy, failed_name=COMPLETED_WITH_FAILURES)
    assert state.is_completed() and state.name == COMPLETED_WITH_FAILURES
    assert state.message == ("shard-00003: 16 samples: 5 publishable, 2 rejected (verification: wrong_answer 2), "
                             "9 failed (generation failed: thinking_token_cap 9); 3 retried")
    healthy = summary.model_copy(update={"tally": ShardTally(publishable=15, failed=1)})
    assert shard_state(healthy, policy, failed_name=COMPLETED_WITH_FAILURES).name == "Completed"
    assert shard_message(healthy.model_copy(update={"skipped": True})).endswith("finished by an earlier run")


def test_the_trend_shows_a_regression_as_a_short_bar():
    points = [
        report.point_from_figures("v1", {"pass_rate_all": 0.9, "usage": {"t": {"requests": 40, "tokens_generated": 900}}},
                                  {"published": 36, "rejected": 2, "failed": 2}),
        report.point_from_figures("this build (BLOCKED)", {"pass_rate_all": 0.4}, {"published": 16, "failed": 24}),
    ]
    assert points[0].publish_rate == 0.9 and points[0].requests_per_sample == round(40 / 36, 2)
    chart = report.trend_chart(points)
    publish = chart.split("publish rate\n")[1].split("\n\n")[0].splitlines()
    assert publish[0].startswith("v1 ") and publish[0].endswith(" 0.90") and publish[0].count("█") == 27
    assert publish[1].startswith("this build (BLOCKED) ") and publish[1].count("█") == 12
    rows = report.trend_rows(points)
    assert rows[1]["published / rejected / failed"] == "16 / - / 24" and rows[1]["publish rate"] == "0.40"


def test_links_have_a_scheme_a_browser_opens():
    assert report.console_link(None, "s3://b/p/ds/v2") is None
    aws = "https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={prefix}/"
    assert report.console_link(aws, "s3://bucket/data sets/ds/v2") == (
        "https://s3.console.aws.amazon.com/s3/buckets/bucket?prefix=data%20sets/ds/v2/")
    result = _blocked().model_copy(update={"uri": "/srv/datasets/ds/v2"})
    assert report.version_uri(result) == "file:///srv/datasets/ds/v2"
    assert report.version_uri(result.model_copy(update={"uri": "s3://b/ds/v2"})) == "s3://b/ds/v2"


def test_server_side_counters_add_up_over_replicas_and_shards():
    from tessy_core.builder.pipeline import server_usage

    def shard(shard_id: str, a: int, b: int) -> ShardSummary:
        replicas = {
            "http://a:8000/v1": {"requests": a, "prompt_tokens": 10 * a, "completion_tokens": a, "errors": 1, "failovers": 0},
            "http://b:8000/v1": {"requests": b, "prompt_tokens": 10 * b, "completion_tokens": b, "errors": 0, "failovers": 1},
        }
        return ShardSummary(shard_id=shard_id, samples=4, skipped=False,
                            servers={"teacher": {"model_id": "t@main", "replicas": replicas}})

    totals = server_usage([shard("s0", 3, 4), shard("s1", 5, 0)])
    assert totals == {"teacher": {"model_id": "t@main", "endpoints": ["http://a:8000/v1", "http://b:8000/v1"],
                                  "requests": 12, "prompt_tokens": 120, "completion_tokens": 12, "errors": 2,
                                  "failovers": 2}}
    assert server_usage([ShardSummary(shard_id="s", samples=1, skipped=False)]) == {}  # in-process models


@pytest.mark.slow
def test_a_build_over_http_reports_server_side_cost_retries_and_logs_them(tmp_path, ending_models):
    """Against a real HTTP server (the fake OpenAI one) that fails every 4th request: the servers'
    own counters (requests, tokens, errors, failovers) reach the result, the report's cost table
    and each shard's log, with the endpoints and the served model."""
    import logging

    from flows.dashboard import ShardLog
    from tessy_core.builder import pipeline
    from tessy_core.builder.progress import listening
    from tests.builder.helpers import LENIENT_VALIDATION, seed_catalog
    from tests.reliability.fake_openai import FakeOpenAIServer
    from tests.reliability.helpers import http_config

    server = FakeOpenAIServer(fault=lambda call: "500" if call.number % 4 == 0 else None).start()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tessy.test.shard-log")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    try:
        seed_catalog(tmp_path, 4)
        config = http_config(tmp_path, ending_models, [server.base_url], shard_size=2, validation=LENIENT_VALIDATION,
                             verification={"enabled": False})
        prepared = pipeline.prepare_build(config)
        shards = []
        for shard in prepared.plan.shards:
            with listening(ShardLog(logger, prepared.build_id, shard.shard_id)):
                shards.append(pipeline.generate_shard(config, prepared.build_id, shard.shard_id))
        result = pipeline.finish_build(config, prepared, shards)
    finally:
        server.stop()

    assert result.status == "published"
    for role in ("teacher", "student"):
        counters = result.servers[role]
        assert counters["endpoints"] == [server.base_url] and counters["model_id"]
        assert counters["requests"] >= result.usage[role]["requests"] > 0
        assert counters["completion_tokens"] > 0
    # The fake server's streamed chunks carry completion tokens only; its plain answers carry both.
    assert result.servers["student"]["prompt_tokens"] > 0
    assert sum(result.servers[r]["errors"] for r in ("teacher", "student")) == server.faults_served["500"] > 0
    assert sum(result.servers[r]["failovers"] for r in ("teacher", "student")) > 0
    costs = {row["model"]: row for row in report.cost_rows(result)}
    published = result.counts["published"]
    assert costs["teacher"]["server prompt tokens"] == f"{result.servers['teacher']['prompt_tokens'] / published:,.1f}"

    lines = [record.getMessage() for record in records]
    assert any("samples to generate" in m and f"http: {server.base_url}" in m for m in lines), lines
    assert any(f"teacher server {server.base_url}" in m and "failovers" in m for m in lines), lines
    assert any(m.startswith("shard-00001 finished in") for m in lines), lines

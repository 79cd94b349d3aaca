"""The decode bench's mode set-up, server counters and ratios (the real-server run is in
tests/workers/test_vllm_servers.py)."""

from __future__ import annotations

from tessy_core.backends.server_metrics import ServerCounters, metrics_url, parse_prometheus
from tessy_core.bench.decode import (
    DecodeBenchSettings, median_round, mode_config, ratios, repeat_figures, requests_for, server_figures,
)
from tessy_core.config import GenerationConfig, Mode


def _config() -> GenerationConfig:
    model = {"path": "x", "endpoints": ["http://h:1/v1"], "span_tokens": 32}
    return GenerationConfig.model_validate({
        "teacher": {"name": "t", **model}, "student": {"name": "s", **model},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["so"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["so"]},
        "engine": {"mode": "teacher_only", "span_requests": "fixed"},
    })


def test_modes_differ_only_in_what_the_bench_compares():
    settings = DecodeBenchSettings(lockstep_teacher_k=12, lockstep_student_k=3)
    tessy = mode_config(_config(), "tessy", settings)
    stream = mode_config(_config(), "tessy_stream", settings)
    lockstep = mode_config(_config(), "lockstep_standin", settings)
    fixed = mode_config(_config(), "tessy_fixed", settings)
    # "tessy" is the engine as shipped, whatever the config file says.
    assert tessy.engine.mode is Mode.tessy and tessy.engine.span_requests == "stops"
    assert stream.engine.span_requests == "stream"
    assert (lockstep.teacher.span_tokens, lockstep.student.span_tokens) == (12, 3)
    assert lockstep.engine.span_requests == "fixed" and fixed == lockstep
    assert mode_config(_config(), "teacher_only", settings).engine.mode is Mode.teacher_only


def test_ratios_are_cost_per_output_token_and_targets_are_checked():
    figures = {
        "tessy": {"ms_per_output_token": 2.0, "discarded_vs_kept": 0.1, "server_tokens_per_kept_token": 1.2,
                  "requests_per_span": 1.05, "accounting": {"teacher": {"tokens_error": -0.02}}},
        "teacher_only": {"ms_per_output_token": 1.6, "accounting": {"teacher": {"tokens_error": 0.07}}},
        "lockstep_standin": {"ms_per_output_token": 5.0},
    }
    out = ratios(figures)
    assert out["tessy_vs_teacher_only"] == 1.25 and out["lockstep_vs_tessy"] == 2.5
    assert out["accounting_error_max"] == 0.07
    assert out["targets_met"] == {
        "lockstep_vs_tessy": True, "tessy_server_tokens_per_kept_token": False,
        "tessy_requests_per_span": True, "accounting": False,
    }
    assert out["lockstep_vs_tessy_fixed"] is None


def _round(tessy_ms: float, lockstep_ms: float, teacher_ms: float) -> dict[str, dict]:
    return {
        "tessy": {"ms_per_output_token": tessy_ms, "wall_s": tessy_ms * 10},
        "lockstep_standin": {"ms_per_output_token": lockstep_ms, "wall_s": lockstep_ms * 10},
        "teacher_only": {"ms_per_output_token": teacher_ms, "wall_s": teacher_ms * 10},
    }


def test_repeated_rounds_report_the_median_round_and_every_rounds_ratios():
    # lock-step / tessy per round: 2.0, 1.4, 1.6 -> the median round is the third.
    rounds = [_round(1.0, 2.0, 0.8), _round(1.0, 1.4, 0.5), _round(1.0, 1.6, 0.9)]
    per_round = [ratios(figures) for figures in rounds]
    assert median_round(per_round) == 2
    summary = repeat_figures(rounds, per_round, 2)
    assert summary["count"] == 3 and summary["median_round"] == 2
    assert summary["wall_s"]["tessy"] == [10.0, 10.0, 10.0] and summary["wall_s"]["lockstep_standin"] == [20.0, 14.0, 16.0]
    assert summary["ratios"]["lockstep_vs_tessy"] == [2.0, 1.4, 1.6] and summary["medians"]["lockstep_vs_tessy"] == 1.6
    # Each ratio's median is its own: tessy / teacher_only per round 1.25, 2.0, 1.111.
    assert summary["medians"]["tessy_vs_teacher_only"] == 1.25
    assert "tessy_fixed_vs_tessy" not in summary["ratios"]  # a mode not run gives no ratio
    # Without lock-step, tessy / teacher_only picks the round; with one mode, the first round.
    without = [ratios({k: v for k, v in r.items() if k != "lockstep_standin"}) for r in rounds]
    assert median_round(without) == 0
    assert median_round([ratios({"tessy": r["tessy"]}) for r in rounds]) == 0
    # An even count takes the upper of the two middle rounds.
    assert median_round(per_round + [ratios(_round(1.0, 1.5, 0.8))]) == 2


def test_requests_cycle_over_prompts():
    requests = requests_for([("a", "A"), ("b", "B")], 5)
    assert [(r.prompt_id, r.sample_index) for r in requests] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]


METRICS = """# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="t"} 7.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="t"} 2.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="t"} 1.0
vllm:prompt_tokens_total{engine="0",model_name="t"} 1200.0
vllm:prompt_tokens_cached_total{engine="0",model_name="t"} 800.0
vllm:prefix_cache_hits_total{engine="0",model_name="t"} 800.0
vllm:generation_tokens_total{engine="0",model_name="t"} 345.0
vllm:generation_tokens_created 1.7e9
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="t"} 4.5
vllm:e2e_request_latency_seconds_count{engine="0",model_name="t"} 10.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="t"} 0.5
vllm:request_decode_time_seconds_sum{engine="0",model_name="t"} 3.5
vllm:iteration_tokens_total_sum{engine="0",model_name="t"} 1545.0
vllm:iteration_tokens_total_count{engine="0",model_name="t"} 100.0
"""


def test_server_counters_are_read_from_vllm_metrics_and_differenced():
    before = ServerCounters.from_samples(parse_prometheus(METRICS))
    assert before.requests == 10 and before.requests_by_reason == {"stop": 7, "length": 2, "abort": 1}
    assert (before.prompt_tokens, before.prompt_tokens_cached, before.generation_tokens) == (1200, 800, 345)
    after = ServerCounters.from_samples(parse_prometheus(METRICS.replace("345.0", "445.0").replace(" 7.0", " 12.0")))
    window = after - before
    assert window.requests == 5 and window.requests_by_reason == {"stop": 5} and window.generation_tokens == 100
    assert before.seconds == {"request": 4.5, "queue": 0.5, "decode": 3.5}
    assert before.to_record()["mean_tokens_per_engine_step"] == 15.45
    # Two replicas of one model add up.
    assert (before + before).generation_tokens == 690
    assert (before + before).seconds["request"] == 9.0 and (before + before).engine_steps == 200
    assert metrics_url("http://h:8000/v1/") == "http://h:8000/metrics"


def test_server_figures_compare_the_engines_accounting_with_the_servers():
    figures = {"models": {"teacher": {"tokens_generated": 95, "requests": 5}}, "output_tokens": 80, "tokens_generated": 95}
    window = ServerCounters(requests=5, requests_by_reason={"stop": 5}, generation_tokens=100)
    window.seconds = {"request": 2.0}
    server_figures(figures, {"teacher": window}, {"teacher": 2.5})
    assert figures["accounting"]["teacher"]["tokens_error"] == -0.05
    # 0.5 s the client waited beyond the servers' own time, over 5 requests.
    assert figures["accounting"]["teacher"]["outside_server_ms_per_request"] == 100.0
    assert figures["server_tokens_per_kept_token"] == 1.25 and figures["engine_tokens_per_kept_token"] == 1.188
    assert figures["servers"]["teacher"]["requests_by_finish_reason"] == {"stop": 5}

"""The decode bench's mode set-up and ratios (the real-server run is in tests/workers/test_vllm_servers.py)."""

from __future__ import annotations

from tessy_core.bench.decode import DecodeBenchSettings, mode_config, ratios, requests_for
from tessy_core.config import GenerationConfig, Mode


def _config() -> GenerationConfig:
    model = {"path": "x", "endpoints": ["http://h:1/v1"], "span_tokens": 32}
    return GenerationConfig.model_validate({
        "teacher": {"name": "t", **model}, "student": {"name": "s", **model},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["so"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["so"]},
        "engine": {"mode": "teacher_only"},
    })


def test_modes_differ_only_in_what_the_bench_compares():
    settings = DecodeBenchSettings()
    tessy = mode_config(_config(), "tessy", settings)
    lockstep = mode_config(_config(), "lockstep", settings)
    fixed = mode_config(_config(), "tessy_fixed", settings)
    assert tessy.engine.mode is Mode.tessy and tessy.engine.span_requests == "stream"
    assert (lockstep.teacher.span_tokens, lockstep.student.span_tokens) == (10, 5)
    assert lockstep.engine.span_requests == "fixed" and fixed == lockstep
    assert mode_config(_config(), "teacher_only", settings).engine.mode is Mode.teacher_only


def test_ratios_are_cost_per_output_token_and_targets_are_checked():
    figures = {
        "tessy": {"ms_per_output_token": 2.0, "discarded_vs_kept": 0.1},
        "teacher_only": {"ms_per_output_token": 1.6},
        "lockstep": {"ms_per_output_token": 5.0},
    }
    out = ratios(figures)
    assert out["tessy_vs_teacher_only"] == 1.25 and out["lockstep_vs_tessy"] == 2.5
    assert out["targets_met"] == {"tessy_vs_teacher_only": True, "lockstep_vs_tessy": True, "tessy_discarded_vs_kept": True}
    assert out["lockstep_vs_tessy_fixed"] is None


def test_requests_cycle_over_prompts():
    requests = requests_for([("a", "A"), ("b", "B")], 5)
    assert [(r.prompt_id, r.sample_index) for r in requests] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]

"""`tessy preflight --offline` against model folders of the real families (tests/family_fixtures.py):
it passes a right config and rejects, with the right reasons, a broken template, a too-small
context, a wrong family, and (with --strict) a prompt that changes with the day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tessy_core.cli import app
from tests.family_fixtures import (
    HARMONY_FINAL_CHANNEL_TEMPLATE,
    build_family_folder,
    build_family_tokenizer,
    save_released_predictor,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        "qwen3": build_family_folder(root / "qwen3-8b", "qwen3", context_tokens=40_960),
        "harmony": build_family_folder(root / "gpt-oss-120b", "harmony", context_tokens=131_072),
        "harmony_final": build_family_folder(root / "gpt-oss-community", "harmony", chat_template=HARMONY_FINAL_CHANNEL_TEMPLATE),
        "qwen3_small": build_family_folder(root / "qwen3-small-context", "qwen3", context_tokens=8_192),
        "predictor": save_released_predictor(root / "Qwen3-0.6B-predictor", build_family_tokenizer("qwen3")),
    }


def _config(tmp_path: Path, folders, *, teacher=None, student=None, engine=None, build=False, **extra) -> Path:
    generation = {
        "teacher": {"name": "gpt-oss-120b", "path": str(folders["harmony"]), "family": "harmony",
                    "endpoints": ["http://127.0.0.1:9/v1"], **(teacher or {})},
        "student": {"name": "qwen3-8b", "path": str(folders["qwen3"]), "family": "qwen3",
                    "endpoints": ["http://127.0.0.1:9/v1"], **(student or {})},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus", "We need"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["Okay,", "Hmm,"]},
        "engine": {"max_thinking_tokens": 36_000, "max_answer_tokens": 4096, **(engine or {})},
        **extra,
    }
    data = {"dataset": "code-sft", "generation": generation} if build else {"generation": generation}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(config: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["preflight", "--config", str(config), "--offline", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def _by_check(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["subject"], c["name"]): c for c in report["checks"]}


def test_a_right_config_for_the_real_families_passes_and_shows_its_prompts(tmp_path, folders):
    code, report = _run(_config(tmp_path, folders, build=True), "--show-prompts")
    assert code == 0 and report["ok"] and report["errors"] == [] and report["online"] is False, report
    checks = _by_check(report)
    for subject in ("teacher", "student"):
        for name in ("tokenizer", "template", "markers", "budgets"):
            assert checks[(subject, name)]["status"] == "ok", checks[(subject, name)]
    assert checks[("teacher", "date")]["detail"].endswith("2025-08-05")
    assert "'<|end|>' (special)" in checks[("teacher", "markers")]["detail"]
    assert "'</think>' (text)" in checks[("student", "markers")]["detail"]
    budgets = checks[("student", "budgets")]["data"]
    assert budgets["context"] == 40_960 and budgets["answer_reserve"] > 4096
    prompts = report["prompts"]
    assert prompts["student"]["thinking"].endswith("<|im_start|>assistant\n<think>\n")
    assert prompts["teacher"]["thinking"].endswith("<|start|>assistant<|channel|>analysis<|message|>")
    assert "Reasoning: high\n" in prompts["teacher"]["thinking"] and "Current date: 2025-08-05\n" in prompts["teacher"]["thinking"]
    assert prompts["student"]["assistant"] == "<think>\n<the shared thinking>\n</think>\n\n<the answer>"


def test_a_template_that_opens_the_final_channel_is_rejected(tmp_path, folders):
    code, report = _run(_config(tmp_path, folders, teacher={"path": str(folders["harmony_final"])}))
    assert code == 1 and not report["ok"]
    template = _by_check(report)[("teacher", "template")]
    assert template["status"] == "error"
    assert "opens the final answer itself" in template["detail"]
    assert "<|start|>assistant<|channel|>analysis<|message|>" in template["detail"]


def test_a_context_too_small_for_the_budgets_is_rejected_with_what_would_fit(tmp_path, folders):
    code, report = _run(_config(tmp_path, folders, student={"path": str(folders["qwen3_small"])},
                                engine={"max_thinking_tokens": 38_000}))
    assert code == 1
    budgets = _by_check(report)[("student", "budgets")]
    assert budgets["status"] == "error"
    assert "exceed the context of 8192 (model folder)" in budgets["detail"] and "context_exhausted" in budgets["detail"]
    data = budgets["data"]
    fits = 8192 - data["prompt_tokens"] - data["prompt_margin"] - data["answer_reserve"]
    assert f"max_thinking_tokens to at most {fits}" in budgets["detail"]
    # The teacher (131,072) has room: only the student is named.
    assert _by_check(report)[("teacher", "budgets")]["status"] == "ok"
    assert [e.split(":")[0] for e in report["errors"]] == ["student budgets"]


def test_the_paper_budgets_do_not_fit_a_40960_token_student(tmp_path, folders):
    code, report = _run(_config(tmp_path, folders, engine={"max_thinking_tokens": 38_000, "max_answer_tokens": 4096}))
    assert code == 1 and _by_check(report)[("student", "budgets")]["status"] == "error"


def test_a_wrong_family_is_caught_by_its_markers(tmp_path, folders):
    code, report = _run(_config(tmp_path, folders, teacher={"path": str(folders["qwen3"])}))
    assert code == 1
    markers = _by_check(report)[("teacher", "markers")]
    assert markers["status"] == "error" and "<|end|>" in markers["detail"] and "family" in markers["detail"]


def test_an_unpinned_date_and_an_unread_option_warn_and_strict_fails_on_them(tmp_path, folders):
    config = _config(tmp_path, folders, teacher={"template_options": {"date": None}},
                     student={"template_options": {"kwargs": {"reasoning_effort": "high"}}})
    code, report = _run(config)
    assert code == 0 and report["ok"]
    warnings = " | ".join(report["warnings"])
    assert "teacher date: the prompt holds today's date" in warnings
    assert "student template options: the template never reads reasoning_effort" in warnings
    code, strict = _run(config, "--strict")
    assert code == 1 and len(strict["errors"]) == 2


def test_a_released_predictor_loads_with_its_default_window(tmp_path, folders):
    learned = {"kind": "learned", "path": str(folders["predictor"]), "device": "auto"}
    code, report = _run(_config(tmp_path, folders, teacher_predictor=learned))
    assert code == 0, report["errors"]
    check = _by_check(report)[("teacher_predictor", "load")]
    assert check["data"]["window_tokens"] == 200 and check["data"]["window_from"] == "released default"
    missing = {"kind": "learned", "path": str(tmp_path / "nowhere")}
    code, report = _run(_config(tmp_path, folders, student_predictor=missing))
    assert code == 1 and _by_check(report)[("student_predictor", "load")]["status"] == "error"


def test_people_get_a_table_and_every_reason(tmp_path, folders):
    config = _config(tmp_path, folders, student={"path": str(folders["qwen3_small"])},
                     teacher={"path": str(folders["harmony_final"])}, engine={"max_thinking_tokens": 38_000})
    result = CliRunner().invoke(app, ["preflight", "--config", str(config), "--offline"])
    assert result.exit_code == 1
    assert "tessy preflight (offline)" in result.output
    assert "not ready: 2 problem(s)" in result.output
    assert "teacher template" in result.output and "student budgets" in result.output


def test_tessy_build_runs_the_offline_preflight_first_and_refuses_with_every_reason(tmp_path, folders):
    config = _config(tmp_path, folders, build=True, student={"path": str(folders["qwen3_small"])},
                     teacher={"path": str(folders["harmony_final"])}, engine={"max_thinking_tokens": 38_000})
    result = CliRunner().invoke(app, ["build", "--config", str(config), "--json"])
    assert result.exit_code == 1
    reply = json.loads(result.stdout)
    assert reply["ok"] is False and reply["dataset"] == "code-sft"
    assert reply["error"].startswith("preflight: this build would fail or degrade")
    assert "teacher template" in reply["error"] and "student budgets" in reply["error"]
    assert "--skip-preflight" in reply["error"]
    assert [c["name"] for c in reply["preflight"]["checks"] if c["status"] == "error"] == ["template", "budgets"]


def test_more_stop_strings_than_vllm_accepts_by_default_are_flagged(tmp_path, folders):
    import shutil

    with_stops = tmp_path / "predictor-with-stops"
    shutil.copytree(folders["predictor"], with_stops)
    (with_stops / "handover_stops.json").write_text(json.dumps({"role": "teacher", "stops": [" Thus", " Now", " Check:", " So"]}))
    learned = {"kind": "learned", "path": str(with_stops), "device": "cpu"}
    code, report = _run(_config(tmp_path, folders, teacher_predictor=learned))
    check = _by_check(report)[("teacher_predictor", "stop strings")]
    assert code == 0 and check["status"] == "warn" and check["data"]["stop_strings"] == 6  # <|end|>, <|channel|>final
    assert "VLLM_MAX_STOP_STRINGS>=6" in check["detail"]
    code, report = _run(_config(tmp_path, folders, teacher_predictor=learned, engine={"span_requests": "fixed"}))
    assert ("teacher_predictor", "stop strings") not in _by_check(report)

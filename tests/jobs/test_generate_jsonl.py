"""`tessy generate` (the `jobs.generate_jsonl` job) end to end on two real (tiny, random) models that differ in everything:
tokenizer, vocabulary, chat template and end-of-thinking marker."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tessy_core.cli import app
from tessy_core.config import Mode


@pytest.fixture()
def job_files(tiny_models, tmp_path):
    config = {
        "generation": {
            "teacher": {"name": "teacher", "path": str(tiny_models["teacher"]), "family": "harmony",
                        "backend": "transformers", "span_tokens": 6},
            "student": {"name": "student", "path": str(tiny_models["student"]), "family": "qwen3",
                        "backend": "transformers", "span_tokens": 3},
            "teacher_predictor": {"kind": "lexicon", "phrases": ["We need to", "Thus", "Compute"]},
            "student_predictor": {"kind": "lexicon", "phrases": ["Okay", "Hmm", "Wait", "so"]},
            "engine": {"max_thinking_tokens": 24, "max_answer_tokens": 8, "max_attempts": 2, "concurrency": 4},
        }
    }
    (tmp_path / "gen.yaml").write_text(yaml.safe_dump(config))
    rows = [{"statement": f"Print the sum of {n} numbers read from stdin.", "tests": []} for n in range(3)]
    rows.append({"no_statement_here": 1})  # a bad row: reported, not fatal
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_accounts_for_every_sample(job_files, mode):
    out = job_files / f"{mode.value}.jsonl"
    args = ["generate", "--config", str(job_files / "gen.yaml"), "--prompts", str(job_files / "prompts.jsonl"),
            "--out", str(out), "--mode", mode.value, "--samples", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["samples_requested"] == 6
    assert summary["samples_ok"] + summary["samples_failed"] == 6
    assert len(summary["prompts_rejected"]) == 1 and summary["prompts_rejected"][0]["line"] == 4

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["sample_id"] for r in records}) == 6
    for record in records:
        assert record["mode"] == mode.value
        assert record["status"] == "ok" or record["failure_reason"]
        assert record["identities"]["teacher_model"].startswith("teacher@")
        if record["status"] == "ok":
            assistant = record["messages"][1]["content"]
            assert assistant.startswith("<think>\n") and assistant.count("</think>") == 1
    used = {r["answer_role"] for r in records}
    if mode is Mode.mixture:  # each sample is teacher_only or student_only, drawn by its id
        assert all(r["answer_role"] == r["mode_details"]["drawn_mode"].removesuffix("_only") for r in records)
    else:
        assert used == {"teacher" if mode in (Mode.teacher_only, Mode.teacher_answer) else "student"}
    per_model = summary["models"]
    if mode is Mode.tessy:
        assert per_model["teacher"]["requests"] > 0 and per_model["student"]["requests"] > 0

    # A rerun finds everything done and generates nothing.
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["samples_already_done"] == 6
    assert again["models"]["teacher"]["requests"] == again["models"]["student"]["requests"] == 0
    assert len(out.read_text().splitlines()) == 6

    # A crash mid-write leaves a torn last line: the rerun cuts it and appends after whole lines.
    with out.open("a") as handle:
        handle.write('{"sample_id": "tor')
    torn = json.loads(CliRunner().invoke(app, args).stdout)
    assert torn["samples_already_done"] == 6
    assert [json.loads(line)["sample_id"] for line in out.read_text().splitlines()] == [r["sample_id"] for r in records]


def test_invalid_config_is_a_clear_error(tmp_path, job_files):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"generation": {"teacher": {"name": "t", "path": "x"}}}))
    result = CliRunner().invoke(app, ["generate", "--config", str(bad), "--prompts", str(job_files / "prompts.jsonl"),
                                      "--out", str(tmp_path / "o.jsonl"), "--json"])
    assert result.exit_code == 1
    assert "invalid config" in json.loads(result.stdout)["error"]

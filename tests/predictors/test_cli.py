"""`tessy predictor train` / `tessy predictor eval` end to end through the CLI (real training)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tessy_core.cli import app
from tessy_core.predictors.labels import write_labelled_jsonl
from tests.predictors.synthetic import labelled_corpus

pytestmark = pytest.mark.slow


def _cli(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def test_train_from_labelled_text_then_eval(tiny_models, tmp_path):
    labelled = tmp_path / "labelled.jsonl"
    write_labelled_jsonl(labelled, labelled_corpus(160, seed=3))
    held_out = tmp_path / "held_out.jsonl"
    write_labelled_jsonl(held_out, labelled_corpus(20, seed=4))
    config = tmp_path / "predictor.yaml"
    config.write_text(yaml.safe_dump({
        "training": {"base_model": str(tiny_models["student"]), "name": "cli-student", "version": "1", "role": "student",
                     "window_tokens": 48, "max_steps": 40, "learning_rate": 3e-3, "batch_size": 16, "threads": 1},
        "output_root": str(tmp_path / "out"),
        "labelled_file": str(labelled),
        "valid_fraction": 0.2,
        "catalog": str(tmp_path / "catalog.duckdb"),
    }))
    code, trained = _cli("predictor", "train", "--config", str(config))
    assert code == 0 and trained["ok"] and trained["registered"] is True
    assert trained["predictor"]["valid"]["capability_starts"]["f1"] > 0.8
    folder = tmp_path / "out" / "cli-student" / "1"
    assert trained["path"] == str(folder) and (folder / "model.safetensors").exists()

    code, evaluated = _cli("predictor", "eval", "--predictor", str(folder), "--data", str(held_out))
    assert code == 0 and evaluated["ok"] and evaluated["tokens"] > 500
    assert evaluated["capability_starts"]["f1"] > 0.8 and evaluated["token_accuracy"] > 0.9

    code, loose = _cli("predictor", "eval", "--predictor", str(folder), "--data", str(held_out), "--tolerance", "2")
    assert loose["style_starts"]["f1"] >= evaluated["style_starts"]["f1"]


def test_bad_inputs_fail_with_a_clear_error(tiny_models, tmp_path):
    bad_data = tmp_path / "bad.jsonl"
    bad_data.write_text('{"text": "abc", "style_spans": [[0, 2]]}\n{"text": "abc", "style_spans": [[2, 9]]}\n')
    code, result = _cli("predictor", "eval", "--predictor", str(tiny_models["student"]), "--data", str(bad_data))
    assert code == 1 and not result["ok"] and "bad.jsonl:2" in result["error"]

    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"training": {"base_model": "x", "role": "teacher"}, "output_root": str(tmp_path)}))
    code, result = _cli("predictor", "train", "--config", str(config))
    assert code == 1 and "exactly one of" in result["error"]

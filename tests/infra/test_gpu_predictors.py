"""The GPU deployments run the boundary predictors on a GPU, and their budgets pass preflight
against model folders with the real families' formats and contexts (Qwen3-8B: 40,960 tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tessy_core.builder.config import BuildConfig
from tessy_core.cli import app
from tessy_core.config import load_yaml_model
from tessy_core.workers.config import WorkersConfig
from tests.family_fixtures import build_family_folder

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _k8s(kind: str, name: str) -> dict:
    for path in (INFRA / "k8s").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == kind and document["metadata"]["name"] == name:
                return document
    raise KeyError(name)


def _k8s_build_config() -> dict:
    return yaml.safe_load(_k8s("ConfigMap", "tessy-build-config")["data"]["build.yaml"])


def test_the_kubernetes_worker_that_runs_the_predictors_has_a_gpu_and_uses_it():
    (container,) = _k8s("Deployment", "prefect-worker")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == container["resources"]["limits"]["nvidia.com/gpu"] == 1
    config = BuildConfig.model_validate(_k8s_build_config())
    for predictor in (config.generation.teacher_predictor, config.generation.student_predictor):
        assert predictor.kind == "learned" and predictor.device in ("auto", "cuda")
        assert predictor.window_tokens is None  # the window each was trained with


def test_the_gpu_node_leaves_room_for_the_predictors_beside_a_student():
    workers = load_yaml_model(WorkersConfig, INFRA / "vllm" / "node-8gpu.yaml", section="workers")
    on_gpu_4 = [s for s in workers.servers if "4" in s.env["CUDA_VISIBLE_DEVICES"].split(",")]
    assert len(on_gpu_4) == 1 and on_gpu_4[0].gpu_memory_utilization <= 0.80  # ~8 GB of 80 for both predictors
    assert "cuda:4" in (INFRA / "vllm" / "node-8gpu.yaml").read_text()


def test_the_shipped_gpu_build_configs_pass_the_offline_preflight(tmp_path):
    qwen3 = build_family_folder(tmp_path / "qwen3-8b", "qwen3", context_tokens=40_960)
    harmony = build_family_folder(tmp_path / "gpt-oss-120b", "harmony", context_tokens=131_072)
    for name, data in (("k8s", _k8s_build_config()),
                       ("prefect", yaml.safe_load((INFRA / "prefect" / "build.example.yaml").read_text()))):
        generation = data["generation"]
        generation["teacher"]["path"], generation["student"]["path"] = str(harmony), str(qwen3)
        # Predictor weights are not here: their loading is checked elsewhere (tests/test_preflight.py).
        generation["teacher_predictor"] = {"kind": "lexicon", "phrases": ["Thus"]}
        generation["student_predictor"] = {"kind": "lexicon", "phrases": ["Okay,"]}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        result = CliRunner().invoke(app, ["preflight", "--config", str(path), "--offline", "--json"])
        report = json.loads(result.stdout)
        assert result.exit_code == 0 and report["ok"], (name, report["errors"])
        # The teacher runs at the paper's effort on a pinned date: nothing to warn about.
        assert not [w for w in report["warnings"] if "date" in w or "reasoning_effort" in w], report["warnings"]

"""An SFT evaluation end to end: a tiny student fine-tuned (real TRL) on a small published version,
base vs tuned answers judged in the real sandbox, recorded in the real catalog, the card, lineage
and Prefect artifacts; leakage refused; the CLI."""

from __future__ import annotations

import json

import pytest
import yaml

from tessy_core.catalog import Catalog, get_model, lineage_events, list_dataset_versions
from tessy_core.evaluation.config import EvaluationConfig
from tessy_core.evaluation.pipeline import LeakageError, prepare_evaluation
from tessy_core.evaluation.records import list_evaluations
from tessy_core.publish.manifest import current_code_version

from tests.evaluation.conftest import evaluation_config_dict

pytestmark = pytest.mark.slow


def _artifacts(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_the_flow_fine_tunes_measures_and_records_an_evaluation(prefect_harness, published, ending_models, capsys):
    from flows.evaluate import evaluate_dataset

    root = published
    config = EvaluationConfig.model_validate(evaluation_config_dict(root))
    state = evaluate_dataset(ref="tiny@v1", config=config, return_state=True)
    assert state.is_completed(), state
    # The trainer's log lines go to stderr: stdout is `--json`'s.
    printed = capsys.readouterr()
    assert "train_runtime" not in printed.out and "train_runtime" in printed.err
    result = state.result()

    # Real fine-tuning: three optimizer steps, the loss on assistant tokens only, weights moved.
    training = result.training
    assert training.steps == 3 and training.examples >= 1 and not training.reused
    assert training.chat_template_source == "tessy-chatml"
    assert 0 < training.trained_tokens_share < 1
    tuned, base = _weights(result.tuned_model_path and __import__("pathlib").Path(result.tuned_model_path)), _weights(ending_models["student"])
    assert tuned.keys() == base.keys()
    assert any(not (tuned[name] == base[name]).all() for name in base)

    # Same problems, samples and repeats for both models.
    for figures in (result.base, result.tuned):
        assert figures.problems == 3 and figures.samples == 3 * 2 * 2 and len(figures.repeats) == 2
        assert set(figures.pass_at) == {"1", "2"}
        assert all(0.0 <= v <= 1.0 for s in figures.pass_at.values() for v in s.values)
        assert figures.style_nll.mean is None or figures.style_nll.mean > 0
    for role, path in result.samples_files.items():
        lines = open(path).read().splitlines()
        assert len(lines) == 12, role

    # The catalog row links the version, the base model, the config and the code.
    catalog = Catalog(config.catalog_path)
    (record,) = list_evaluations(catalog, "tiny", "v1")
    assert record.status == "succeeded" and record.evaluation_id == result.evaluation_id
    (version,) = list_dataset_versions(catalog, "tiny")
    assert record.manifest_checksum == version.manifest_checksum
    assert record.config_hash == config.identity_hash() and record.config == config.identity()
    assert record.code["git_commit"] == current_code_version().git_commit
    assert get_model(catalog, record.base_model).path_or_hf_id == str(ending_models["student"])
    assert record.pass_at_1_tuned == result.tuned.pass_at_1 and record.results["training"]["steps"] == 3
    assert len(record.eval_prompt_ids) == 3

    # The version's card shows it; the data files are untouched.
    card = (root / "datasets" / "tiny" / "v1" / "README.md").read_text()
    assert "## SFT evaluations" in card and result.evaluation_id in card

    # Lineage: the dataset version is the run's input, the fine-tuned student an output.
    events = lineage_events(catalog, record.lineage_run_id)
    assert [e.event_type for e in events] == ["START", "COMPLETE"]
    assert "tiny/v1" in events[-1].inputs and "evaluations" in events[-1].outputs
    inputs = {d["name"]: d for d in events[-1].payload["inputs"]}
    assert inputs["tiny/v1"]["namespace"] == (root / "datasets").resolve().as_uri()

    # Prefect artifacts: the figures table and the chart.
    artifacts = {a.key: a for a in _artifacts(state.state_details.flow_run_id)}
    assert set(artifacts) == {"evaluate-tiny-v1-figures", "evaluate-tiny-v1-chart"}
    assert "style NLL" in artifacts["evaluate-tiny-v1-chart"].data and "█" in artifacts["evaluate-tiny-v1-chart"].data
    assert json.loads(artifacts["evaluate-tiny-v1-figures"].data)[0]["version"] == "tiny@v1"


def test_the_cli_reuses_the_student_and_compare_prints_the_table(prefect_harness, published, tmp_path):
    from typer.testing import CliRunner

    from tessy_core.cli import app

    root = published
    config_file = tmp_path / "evaluate.yaml"
    config_file.write_text(yaml.safe_dump(evaluation_config_dict(root)))
    outcome = CliRunner().invoke(app, ["evaluate", "sft", "tiny@v1", "--config", str(config_file), "--json"])
    assert outcome.exit_code == 0, outcome.output
    payload = json.loads(outcome.stdout)
    assert payload["ok"] and payload["ref"] == "tiny@v1" and payload["training"]["reused"]

    catalog = str(root / "catalog.duckdb")
    outcome = CliRunner().invoke(app, ["evaluate", "compare", "tiny@v1", "--catalog", catalog, "--json"])
    assert outcome.exit_code == 0, outcome.output
    (row,) = json.loads(outcome.stdout)["rows"]
    assert row["version"] == "tiny@v1" and row["evaluation"] == payload["evaluation_id"]
    assert {"pass@1 base", "pass@1 tuned", "pass@2 tuned", "style NLL tuned", "format ok tuned"} <= set(row)

    outcome = CliRunner().invoke(app, ["evaluate", "compare", "tiny@v1", "tiny@v9", "--catalog", catalog, "--json"])
    assert outcome.exit_code == 1 and "tiny@v9" in json.loads(outcome.stdout)["error"]


@pytest.mark.parametrize("sources", [["unit"], ["eval", "unit"]])
def test_an_evaluation_on_problems_the_version_was_built_from_is_refused(prefect_harness, published, sources, tmp_path):
    from typer.testing import CliRunner

    from tessy_core.cli import app

    root = published
    data = evaluation_config_dict(root, problems={"selection": {"sources": sources}})
    catalog = Catalog(data["catalog_path"])
    before = len(list_evaluations(catalog, "tiny"))
    with pytest.raises(LeakageError, match="refusing to evaluate tiny@v1: 4 of the"):
        prepare_evaluation(EvaluationConfig.model_validate(data), "tiny@v1")
    config_file = tmp_path / "leaky.yaml"
    config_file.write_text(yaml.safe_dump(data))
    outcome = CliRunner().invoke(app, ["evaluate", "sft", "tiny", "--config", str(config_file), "--json"])
    assert outcome.exit_code == 3 and json.loads(outcome.stdout)["leakage"] is True
    # Nothing was trained or recorded.
    assert len(list_evaluations(catalog, "tiny")) == before

"""The `train_predictor` Prefect flow on a real (temporary) Prefect server: same folder, metrics and
registration as the library pipeline, plus its artifacts."""

from __future__ import annotations

import os

import pytest

from tessy_core.catalog.connection import Catalog
from tessy_core.catalog.registry import get_predictor
from tessy_core.predictors.labels import write_labelled_jsonl
from tests.predictors.synthetic import labelled_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):  # a loaded 2-core CI box starts it slowly
        yield


def test_flow_builds_registers_and_publishes_artifacts(prefect_server, tiny_models, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.train_predictor import train_predictor

    labelled = tmp_path / "labelled.jsonl"
    write_labelled_jsonl(labelled, labelled_corpus(120, seed=7))
    config = {
        "training": {"base_model": str(tiny_models["teacher"]), "name": "flow-teacher", "version": "1",
                     "role": "teacher", "window_tokens": 48, "max_steps": 30, "learning_rate": 3e-3,
                     "batch_size": 16, "threads": 1},
        "output_root": str(tmp_path / "out"),
        "labelled_file": str(labelled),
        "valid_fraction": 0.2,
        "catalog": str(tmp_path / "catalog.duckdb"),
    }
    result = train_predictor(config)
    assert result["registered"] is True and result["predictor"]["valid"]["style_starts"]["f1"] > 0.6
    spec = get_predictor(Catalog(tmp_path / "catalog.duckdb"), "flow-teacher", "1")
    assert spec is not None and spec.metrics["token_accuracy"] == result["predictor"]["valid"]["token_accuracy"]

    import asyncio

    async def artifact_keys() -> set[str]:
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    assert {"predictor-flow-teacher-1-metrics", "predictor-flow-teacher-1-summary"} <= asyncio.run(artifact_keys())

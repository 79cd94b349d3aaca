"""The annotate step's request/response path, and trace sampling, against a real vLLM server.

The served model is tiny and random: its replies are garbage, which is what this proves the path
against (requests as the server accepts them, replies parsed and rejected with a reason, counted,
nothing lost, a finished stage not asked again). The label content is covered by the scripted
annotator in test_pipeline.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tessy_core.predictors.annotation import (
    AnnotationStats,
    AnnotationStatus,
    AnnotatorConfig,
    OpenAIAnnotator,
    annotate_windows,
    cut_windows,
)
from tessy_core.predictors.pipeline import (
    PredictorPipelineConfig,
    stage_annotate,
    stage_traces,
)
from tessy_core.workers.process import free_ports
from tests.vllm_helpers import require_vllm, tessy_json

pytestmark = pytest.mark.slow

TEXT = " ".join(f"Okay, so step {i} adds one to the total. Wait, check the sum again." for i in range(12))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    venv = require_vllm()
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("annotator_vllm")
    model = build_tiny_model(root / "annotator", role="student", seed=21, end_probability=0.05)
    (port,) = free_ports(1)
    workers = root / "workers.yaml"
    workers.write_text(yaml.safe_dump({"workers": {
        "servers": [{"name": "annotator", "model_path": str(model), "port": port, "venv": str(venv),
                     "max_model_len": 1024}],
        "state_dir": str(root / "state"), "stop_grace_s": 5, "startup_timeout_s": 540,
    }}))
    started = tessy_json("workers", "start", "--config", str(workers))
    try:
        assert started["ok"], started
        yield {"root": root, "model": model, "base_url": f"http://127.0.0.1:{port}/v1"}
    finally:
        tessy_json("workers", "stop", "--config", str(workers))


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_every_window_gets_an_answer_and_a_verdict(server, api):
    config = AnnotatorConfig(base_url=server["base_url"], model="annotator", api=api, max_tokens=48, max_retries=1)
    annotator = OpenAIAnnotator(config)
    windows = cut_windows("t", TEXT, words=20)
    try:
        results = await annotate_windows(annotator, windows, concurrency=4)
    finally:
        await annotator.aclose()
    assert len(results) == len(windows) == annotator.requests > 3
    stats = AnnotationStats.of(results)
    assert stats.request_failed == 0, [r.reason for r in results]
    assert stats.windows == stats.accepted + stats.salvaged + stats.invalid_json + stats.unmatched
    for result in results:
        if result.status in (AnnotationStatus.invalid_json, AnnotationStatus.unmatched):
            assert result.reason and result.reply is not None  # the garbage is kept for inspection


async def test_a_refused_request_is_recorded_with_the_servers_reason(server):
    annotator = OpenAIAnnotator(AnnotatorConfig(base_url=server["base_url"], model="no-such-model", max_retries=0))
    try:
        (result,) = await annotate_windows(annotator, cut_windows("t", "Okay, so one.", 10))
    finally:
        await annotator.aclose()
    assert result.status == AnnotationStatus.request_failed and "404" in result.reason


def test_sampling_and_annotation_stages_resume_against_the_server(server, tmp_path):
    from tessy_core.catalog.connection import Catalog
    from tessy_core.catalog.ingestion import ingest

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"statement": f"Read {n} numbers and print their sum.", "tests": []}) + "\n"
                               for n in range(4)))
    catalog = tmp_path / "catalog.duckdb"
    ingest(Catalog(catalog), [prompts], source="predictor-test")
    config = PredictorPipelineConfig.model_validate({
        "training": {"base_model": str(server["model"]), "name": "vllm-student", "role": "student"},
        "output_root": str(tmp_path / "out"),
        "sampling": {
            "model": {"name": "annotator", "path": str(server["model"]), "family": "qwen3",
                      "endpoints": [server["base_url"]], "send_seed": False, "request_timeout_s": 60},
            "catalog": str(catalog), "samples_per_prompt": 2, "max_thinking_tokens": 64, "concurrency": 4,
        },
        "annotator": {"base_url": server["base_url"], "model": "annotator", "max_tokens": 32, "concurrency": 4},
        "window_words": 15,
    })
    traces = stage_traces(config)
    assert 1 <= len(traces) <= 8 and all(text.strip() for text in traces.values())
    assert len((config.work_dir / "traces.jsonl").read_text().splitlines()) == 8  # empty ones are done too
    annotations = stage_annotate(config, traces)
    windows = [w for trace_id in traces for w in cut_windows(trace_id, traces[trace_id], 15)]
    assert {a.window_id for a in annotations} == {w.window_id for w in windows}
    assert all(a.status != AnnotationStatus.request_failed for a in annotations)

    trace_lines = (config.work_dir / "traces.jsonl").read_text()
    annotation_lines = (config.work_dir / "annotations.jsonl").read_text()
    assert stage_traces(config) == traces and stage_annotate(config, traces) == annotations
    assert (config.work_dir / "traces.jsonl").read_text() == trace_lines  # nothing sampled again
    assert (config.work_dir / "annotations.jsonl").read_text() == annotation_lines  # nothing asked again

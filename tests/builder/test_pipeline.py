"""The build steps without Prefect: prepare, generate shards, validate, publish, account, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tessy_core.builder import pipeline
from tessy_core.builder.config import BuildConfig
from tessy_core.builder.progress import listening
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import Catalog, build_samples, lineage_events, list_dataset_versions
from tessy_core.publish import scan
from tessy_core.quality.expectations import ValidationPolicy
from tessy_core.quality.policy import split_by_policy

from tests.builder.helpers import LENIENT_VALIDATION, build_config, seed_catalog


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way handles it."""


def run_all(config: BuildConfig) -> pipeline.BuildResult:
    prepared = pipeline.prepare_build(config)
    shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in (prepared.plan.shards if prepared.plan else [])]
    return pipeline.finish_build(config, prepared, shards)


def test_build_publishes_a_version_and_accounts_for_every_sample(tmp_path, ending_models):
    seed_catalog(tmp_path, 5)
    config = build_config(tmp_path, ending_models)
    result = run_all(config)

    assert result.status == "published", result.message
    assert result.counts["pending"] == 0
    assert result.counts["published"] + result.counts["failed"] + result.counts["rejected"] == 5
    assert result.counts["published"] >= 1
    # The catalog's per-sample outcomes match the published rows exactly.
    catalog = Catalog(config.catalog_path)
    outcomes = {s.sample_id: s for s in build_samples(catalog, result.build_id)}
    rows = scan(config.output.base_uri, result.version).collect()
    assert set(rows["sample_id"]) == {sid for sid, s in outcomes.items() if s.outcome == "published"}
    assert all(s.reason for s in outcomes.values() if s.outcome in ("failed", "rejected"))
    # Each row carries the provenance and verdicts downstream consumers need.
    row = rows.row(0, named=True)
    assert row["messages"][0]["role"] == "user" and row["messages"][1]["role"] == "assistant"
    assert row["spans"] and row["verification"]["verdict"] == "no_code"
    assert {"prompt_id", "mode", "teacher_token_share", "identities", "usage"} <= set(rows.columns)
    # Usage per model and figures are reported.
    assert result.usage["teacher"]["requests"] > 0 and result.usage["student"]["requests"] > 0
    assert result.figures["published"] == result.counts["published"] <= result.figures["generated"]
    # The version is registered with its build, and lineage went START -> COMPLETE, in the catalog
    # and through the OpenLineage file transport.
    (version,) = list_dataset_versions(catalog, "tiny")
    assert version.build_id == result.build_id and version.uri == result.uri
    prepared_events = [json.loads(line) for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in prepared_events] == ["START", "COMPLETE"]
    assert prepared_events[1]["outputs"][0]["name"] == "tiny/v1"
    assert [e.event_type for e in lineage_events(catalog, prepared_events[0]["run"]["runId"])] == ["START", "COMPLETE"]
    # The teacher's template options (harmony defaults: the paper's effort, a pinned date) are part of
    # the version's record: manifest (models and config) and card.
    from tessy_core.publish.reader import read_manifest

    manifest = read_manifest(config.output.base_uri, "tiny", 1)
    assert manifest.models["teacher"]["template_options"] == {
        "kwargs": {"reasoning_effort": "high"}, "date": "2025-08-05", "system_message": None}
    assert manifest.build_config["generation"]["teacher"]["template_options"]["date"] == "2025-08-05"
    assert '"reasoning_effort": "high"' in (Path(config.output.base_uri) / "tiny" / "v1" / "README.md").read_text()


def test_a_build_publishes_through_the_version_store_its_output_names(tmp_path, ending_models, scoped_registries):
    from tessy_core.publish.store import HfParquetStore, register_store

    calls = []

    class RecordingStore(HfParquetStore):
        """A second format: the Hugging Face layout, with every call the build makes written down."""

        def find_build(self, name, build_id):
            calls.append(("find_build", name))
            return super().find_build(name, build_id)

        def publish(self, name, splits, build, version=None):
            calls.append(("publish", name))
            return super().publish(name, splits, build, version)

    register_store("recording", RecordingStore.from_output)
    seed_catalog(tmp_path, 3)
    config = build_config(tmp_path, ending_models)
    config = config.model_copy(update={"output": config.output.model_copy(update={"format": "recording"})})
    assert config.identity_hash() != build_config(tmp_path, ending_models).identity_hash()

    prepared = pipeline.prepare_build(config)
    shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in prepared.plan.shards]
    result = pipeline.finish_build(config, prepared, shards)
    assert result.status == "published" and calls == [("find_build", "tiny"), ("publish", "tiny")]
    # Finishing again (a crash after publishing) asks the store and publishes nothing new.
    again = pipeline.finish_build(config, prepared, shards)
    assert again.version == result.version and calls[2:] == [("find_build", "tiny")]


def test_an_unknown_output_format_fails_the_build_before_anything_is_generated(tmp_path, ending_models):
    seed_catalog(tmp_path, 2)
    config = build_config(tmp_path, ending_models)
    config = config.model_copy(update={"output": config.output.model_copy(update={"format": "lakehouse"})})
    with pytest.raises(ValueError, match="unknown dataset format 'lakehouse'; known: hf-parquet"):
        pipeline.prepare_build(config)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_the_run_that_resumes_a_killed_build_aborts_the_killed_runs_lineage(tmp_path, ending_models):
    seed_catalog(tmp_path, 2)
    config = build_config(tmp_path, ending_models)
    killed = pipeline.prepare_build(config)  # ... and its process died before any other event
    result = run_all(config)

    assert result.build_id == killed.build_id and result.status == "published"
    events = [json.loads(line) for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert [(e["eventType"], e["run"]["runId"] == killed.lineage_run_id) for e in events] == [
        ("START", True), ("ABORT", True), ("START", False), ("COMPLETE", False),
    ]
    assert "resumes the build" in events[1]["run"]["facets"]["errorMessage"]["message"]
    catalog = Catalog(config.catalog_path)
    assert [e.event_type for e in lineage_events(catalog, killed.lineage_run_id)] == ["START", "ABORT"]
    # A later build of the same dataset does not touch runs of finished builds.
    run_all(build_config(tmp_path, ending_models, selection={"sources": ["unit"], "limit": 1}))
    later = [json.loads(line)["eventType"] for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert later[4:] == ["START", "COMPLETE"]


def test_published_version_loads_with_hugging_face_datasets(tmp_path, ending_models):
    from datasets import load_dataset

    seed_catalog(tmp_path, 3)
    result = run_all(build_config(tmp_path, ending_models))
    files = sorted(str(p) for p in (Path(result.uri) / "data").glob("train-*.parquet"))
    cache = str(tmp_path / "hf-cache")  # pytest reuses tmp paths across sessions; HF caches by path
    loaded = load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=cache)
    assert loaded.num_rows == result.counts["published"]
    assert loaded[0]["messages"][1]["role"] == "assistant"
    by_card = load_dataset(result.uri, split="train", cache_dir=cache)  # the card's YAML configs name the files
    assert by_card.num_rows == loaded.num_rows


def test_verified_only_rejects_unverified_samples_and_blocks_an_empty_version(tmp_path, ending_models):
    seed_catalog(tmp_path, 4)
    config = build_config(tmp_path, ending_models, validation={**LENIENT_VALIDATION, "publish": "verified_only"})
    result = run_all(config)

    assert result.status == "blocked" and result.version is None
    assert "published_not_empty" in result.validation["failed_checks"]
    assert result.counts["published"] == 0 and result.counts["pending"] == 0
    rejected = result.counts["rejected"]
    assert result.reasons.get("rejected", {}) == ({"verification: no_code": rejected} if rejected else {})
    catalog = Catalog(config.catalog_path)
    assert not list_dataset_versions(catalog, "tiny")
    events = [json.loads(line)["eventType"] for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert events == ["START", "FAIL"]


def test_label_splits_says_why_each_sample_is_not_published():
    frame = pl.DataFrame(
        {
            "status": ["ok", "ok", "failed", "ok"],
            "failure_reason": [None, None, "repetition: loop", None],
            "verification": [
                {"verdict": "accepted", "passed": 2, "total": 2},
                {"verdict": "wrong_answer", "passed": 0, "total": 2},
                None,
                None,
            ],
        }
    )
    labelled = split_by_policy(frame, ValidationPolicy(publish="verified_only"))
    assert labelled["split"].to_list() == ["train", "rejected", "rejected", "rejected"]
    assert labelled["rejection_reason"].to_list() == [
        None, "verification: wrong_answer", "generation failed: repetition: loop", "verification: missing",
    ]
    everything = split_by_policy(frame, ValidationPolicy(publish="all_with_verdicts"))
    assert everything["split"].to_list() == ["train", "train", "rejected", "train"]


def test_scheduled_builds_take_unused_prompts_until_none_are_left(tmp_path, ending_models):
    seed_catalog(tmp_path, 5)
    config = build_config(
        tmp_path, ending_models, new_prompts_only=True, selection={"sources": ["unit"], "limit": 3}
    )
    first = run_all(config)
    second = run_all(config)
    third = run_all(config)
    catalog = Catalog(config.catalog_path)
    first_prompts = {s.prompt_id for s in build_samples(catalog, first.build_id)}
    second_prompts = {s.prompt_id for s in build_samples(catalog, second.build_id)}
    # Failed samples free their prompts for later builds; published and rejected ones do not.
    failed_first = {s.prompt_id for s in build_samples(catalog, first.build_id) if s.outcome == "failed"}
    assert len(first_prompts) == 3 and (first_prompts - failed_first).isdisjoint(second_prompts)
    assert len(second_prompts) == min(3, 2 + len(failed_first))  # 2 fresh, then failed ones again
    assert first.version == "tiny@v1" and second.version == "tiny@v2"
    if third.status == "empty":
        assert third.build_id is None and third.version is None
    else:  # only prompts whose samples failed before are offered again
        third_prompts = {s.prompt_id for s in build_samples(catalog, third.build_id)}
        assert third_prompts <= failed_first | {s.prompt_id for s in build_samples(catalog, second.build_id) if s.outcome == "failed"}


def test_rerunning_a_finished_build_publishes_nothing_new(tmp_path, ending_models):
    seed_catalog(tmp_path, 2)
    config = build_config(tmp_path, ending_models)
    first = run_all(config)
    again = run_all(config)
    assert again.build_id == first.build_id and again.version == first.version == "tiny@v1"
    assert again.already_published and again.shards["ran"] == 0
    assert len(list_dataset_versions(Catalog(config.catalog_path), "tiny")) == 1


def test_a_killed_build_resumes_with_its_own_selection(tmp_path, ending_models):
    """With new_prompts_only, a fresh selection would skip the killed build's prompts: the rerun must
    find the unfinished build and continue it, keeping the shards and samples it finished."""
    seed_catalog(tmp_path, 5)
    config = build_config(tmp_path, ending_models, new_prompts_only=True, shard_size=2)
    staged: list[str] = []

    def crash_in_second_shard(event):
        if event.kind == "sample":
            staged.append(event.data["shard_id"])
            if event.data["shard_id"] == "shard-00001":
                raise SimulatedCrash

    prepared = pipeline.prepare_build(config)
    with listening(crash_in_second_shard), pytest.raises(SimulatedCrash):
        for shard in prepared.plan.shards:
            pipeline.generate_shard(config, prepared.build_id, shard.shard_id)
    workspace = BuildWorkspace(Path(config.work_dir), prepared.build_id)
    assert workspace.shard_done("shard-00000") is not None
    assert len(workspace.finished_records("shard-00001")) == 1
    first_shard_file = workspace.shards_dir / "shard-00000.jsonl"
    before = first_shard_file.read_bytes()

    resumed = pipeline.prepare_build(config)
    assert resumed.build_id == prepared.build_id and resumed.resumed
    assert resumed.shards_already_done == 1 and resumed.samples_already_done == 3
    regenerated: list[str] = []
    with listening(lambda e: regenerated.append(e.data["shard_id"]) if e.kind == "sample" else None):
        shards = [pipeline.generate_shard(config, resumed.build_id, s.shard_id) for s in resumed.plan.shards]
    result = pipeline.finish_build(config, resumed, shards)
    # The resume re-split the remaining work: shard 1 was closed on its staged sample and its last
    # sample moved to a new shard; the untouched shard 2 stayed as it was.
    assert [s.shard_id for s in resumed.plan.shards] == ["shard-00000", "shard-00001", "shard-00002", "shard-00003"]
    assert resumed.plan.shards[1].sample_ids == list(workspace.finished_records("shard-00001"))
    assert sorted(regenerated) == ["shard-00002", "shard-00003"]  # 1 sample in shard 2, 1 moved from shard 1
    assert first_shard_file.read_bytes() == before
    assert result.status == "published" and result.resumed
    assert result.shards == {
        "total": 4, "ran": 2, "skipped": 2, "samples_generated_now": 2, "samples_kept_from_earlier_runs": 3,
    }
    assert sum(result.counts.values()) == 5 and result.counts["pending"] == 0


def test_a_model_name_clash_fails_before_any_generation(tmp_path, ending_models):
    from tessy_core.catalog import RegistryConflict

    seed_catalog(tmp_path, 2)
    run_all(build_config(tmp_path, ending_models))
    moved = build_config(tmp_path, ending_models, work_dir=str(tmp_path / "other-work"))
    moved_generation = moved.generation.model_copy(
        update={"teacher": moved.generation.teacher.model_copy(update={"path": str(tmp_path / "elsewhere")})}
    )
    with pytest.raises(RegistryConflict):
        pipeline.prepare_build(moved.model_copy(update={"generation": moved_generation}))
    assert not (tmp_path / "other-work").exists()


def test_publishes_to_s3(tmp_path, ending_models, moto_s3, s3_base):
    seed_catalog(tmp_path, 3)
    config = build_config(
        tmp_path, ending_models,
        output={"base_uri": s3_base, "storage": moto_s3.storage_config().model_dump()},
    )
    result = run_all(config)
    assert result.status == "published" and result.uri.startswith("s3://")
    rows = scan(s3_base, result.version, storage=moto_s3.storage_config()).collect()
    assert rows.height == result.counts["published"]

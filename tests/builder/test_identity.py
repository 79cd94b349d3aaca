"""One identity: the config hash, the generation hash and the sample id, whichever command asks."""

from __future__ import annotations

import hashlib
import json

import pytest

from tessy_core.builder.shards import plan_build, shard_requests
from tessy_core.catalog import Catalog, PromptFilter, select_prompts
from tessy_core.config import GenerationConfig, Mode
from tessy_core.identity import config_hash, generation_hash, generation_identity, sample_id

from tests.builder.helpers import build_config_dict, seed_catalog, write_prompts


def generation(**engine) -> GenerationConfig:
    model = {"backend": "transformers", "family": "qwen3"}
    return GenerationConfig(
        teacher={"name": "t", "path": "/models/t", **model},
        student={"name": "s", "path": "/models/s", **model},
        teacher_predictor={"kind": "lexicon", "phrases": ["Thus"]},
        student_predictor={"kind": "lexicon", "phrases": ["Okay"]},
        engine=engine,
    )


def test_engine_options_added_later_change_the_identity_only_off_their_default():
    # The hash this config had before after_teacher_ends, best_of_n and mixture_teacher_share existed.
    assert generation().config_hash() == "c7b1e53b09ab9a9c"
    changed = {generation(after_teacher_ends="student_closes").config_hash(), generation(best_of_n=3).config_hash(),
               generation(mixture_teacher_share=0.25).config_hash()}
    assert len(changed) == 3 and "c7b1e53b09ab9a9c" not in changed


def test_hashes_keep_the_values_existing_builds_and_samples_were_identified_by():
    config = generation()
    legacy_generation_hash = hashlib.sha256(
        json.dumps(generation_identity(config), sort_keys=True).encode()).hexdigest()[:16]
    assert config.config_hash() == generation_hash(config) == legacy_generation_hash
    payload = {"b": [1, 2], "a": {"z": None}}
    assert config_hash(payload) == hashlib.sha256(b'{"a":{"z":null},"b":[1,2]}').hexdigest()
    assert sample_id("p", 3, "tessy", "h") == hashlib.sha256(b"p/3/tessy/h").hexdigest()[:20]
    with pytest.raises(ValueError, match="plain JSON"):
        config_hash({"x": float("nan")})


def test_serving_settings_are_not_identity():
    assert generation(concurrency=1).config_hash() == generation(concurrency=64).config_hash()
    assert generation(seed=1).config_hash() != generation().config_hash()


def test_the_build_and_tessy_generate_give_a_prompt_the_same_sample_ids(tmp_path):
    from tessy_core.jobs.generate_jsonl import PromptFileReport, read_sample_requests

    config = generation()
    prompts_file = write_prompts(tmp_path / "prompts.jsonl", 3)
    seed_catalog(tmp_path, 3)
    prompts = select_prompts(Catalog(tmp_path / "catalog.duckdb"), PromptFilter())
    plan = plan_build("ds", prompts, config_hash="build", generation_hash=config.config_hash(),
                      samples_per_prompt=2, shard_size=10)
    built = {r.sample_id for shard in plan.shards
             for r in shard_requests(plan, shard, {p.prompt_id: p for p in prompts}, Mode.tessy.value)}
    generated = read_sample_requests(prompts_file, config_hash=config.config_hash(), mode=Mode.tessy,
                                     samples_per_prompt=2, limit=None, report=PromptFileReport())
    assert built == {r.sample_id for r in generated} and len(built) == 6
    assert all(r.sample_id == sample_id(r.prompt_id, r.sample_index, "tessy", config.config_hash())
               for r in generated)


def test_the_build_identity_is_the_config_hash_of_its_identity(tmp_path):
    from tessy_core.builder.config import BuildConfig

    data = build_config_dict(tmp_path, {"teacher": tmp_path / "t", "student": tmp_path / "s"})
    config = BuildConfig.model_validate(data)
    moved = BuildConfig.model_validate({**data, "work_dir": str(tmp_path / "elsewhere"),
                                        "runner": {"kind": "threads", "max_workers": 7, "shard_retries": 0}})
    assert config.identity_hash() == moved.identity_hash() == config_hash(config.identity())
    assert config.identity()["generation"] == generation_identity(config.generation)

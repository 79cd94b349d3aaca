"""The typed configuration of a dataset build (one YAML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from tessy_core.catalog.prompts import PromptFilter
from tessy_core.config import GenerationConfig
from tessy_core.identity import config_hash, generation_identity
from tessy_core.publish import LineageConfig, StorageConfig
from tessy_core.quality.expectations import ValidationPolicy
from tessy_core.strict import Strict


class VerificationConfig(Strict):
    enabled: bool = True
    language: Literal["python", "cpp"] = "python"
    workers: int = Field(2, ge=1, description="sandbox worker processes")


class OutputConfig(Strict):
    format: str = Field(
        "hf-parquet",
        description="the version store's format (tessy_core.publish.store): hf-parquet, the Hugging Face "
        "Parquet layout, or any format registered with register_store",
    )
    base_uri: str = "./var/datasets"
    storage: StorageConfig = StorageConfig()
    max_rows_per_file: int = Field(50_000, ge=1)
    console_url: str | None = Field(
        None,
        description="where people browse a version, as a pattern with {bucket}, {prefix} (the version's key "
        "prefix), {path} and {uri}; e.g. https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={prefix}/ "
        "or http://minio:9001/browser/{bucket}/{prefix}/. The build's Prefect link artifact opens it.",
    )


class RunnerConfig(Strict):
    """Where shards run: local threads (default) or a Ray cluster through prefect-ray."""

    kind: Literal["threads", "ray"] = "threads"
    max_workers: int = Field(
        2, ge=1,
        description="shards generated at once: threads in this process, or (ray) the shard tasks the "
        "cluster is expected to run at once, which sizes the shards (Ray places them on free CPUs)",
    )
    ray_address: str | None = Field(None, description="e.g. 127.0.0.1:6379; None starts a local Ray")
    shard_retries: int = Field(
        2, ge=0,
        description="times the flow retries a shard that raised (a lost worker, a server outage); a retried "
        "shard keeps the samples it staged and generates only the rest",
    )
    shard_retry_delay_s: float = Field(10.0, ge=0, description="wait before a shard's retry")


class BuildConfig(Strict):
    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    selection: PromptFilter = PromptFilter()
    new_prompts_only: bool = Field(
        False, description="skip prompts that earlier builds of this dataset used (scheduled builds)"
    )
    samples_per_prompt: int = Field(1, ge=1)
    shard_size: int | None = Field(
        None, ge=1,
        description="prompts per shard; None: sized from the runner's workers and the engine's concurrency "
        "(tessy_core.builder.shards.auto_shard_size). Where work runs, not what it is: a resume re-splits "
        "the remaining work with the current size.",
    )
    generation: GenerationConfig
    verification: VerificationConfig = VerificationConfig()
    validation: ValidationPolicy = ValidationPolicy()
    output: OutputConfig = OutputConfig()
    lineage: LineageConfig = LineageConfig()
    runner: RunnerConfig = RunnerConfig()
    catalog_path: str | None = Field(None, description="default: $TESSY_CATALOG or ./var/catalog.duckdb")
    work_dir: str = Field("./var/builds", description="local staging of shards and checkpoints")

    def prompt_filter(self) -> PromptFilter:
        if self.new_prompts_only and self.selection.exclude_dataset is None:
            return self.selection.model_copy(update={"exclude_dataset": self.dataset})
        return self.selection

    def identity(self) -> dict[str, Any]:
        """What shapes the data, as plain JSON: where things run or are served, and secrets, are left
        out, so a rerun on other endpoints or with more workers resumes the same build."""
        # The default format was the only one before `format` existed: builds keep their identity.
        default_format = self.output.format == OutputConfig.model_fields["format"].default
        payload = self.model_dump(
            mode="json",
            exclude={
                "runner": True,
                "shard_size": True,
                "catalog_path": True,
                "work_dir": True,
                "description": True,
                "lineage": True,
                "output": {"storage", "console_url", *(("format",) if default_format else ())},
                "verification": {"workers"},
                "generation": True,
            },
        )
        return {**payload, "generation": generation_identity(self.generation)}

    def identity_hash(self) -> str:
        """The build's config hash (`tessy_core.identity.config_hash` of `identity()`)."""
        return config_hash(self.identity())


def load_build_config(path: str | Path) -> BuildConfig:
    return BuildConfig.model_validate(yaml.safe_load(Path(path).read_text()))

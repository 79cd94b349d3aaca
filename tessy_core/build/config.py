"""The typed configuration of a dataset build (one YAML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.prompts import PromptFilter
from tessy_core.config import GenerationConfig
from tessy_core.publish import LineageConfig, StorageConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VerificationConfig(_Strict):
    enabled: bool = True
    language: Literal["python", "cpp"] = "python"
    workers: int = Field(2, ge=1, description="sandbox worker processes")


class OutputConfig(_Strict):
    base_uri: str = "./var/datasets"
    storage: StorageConfig = StorageConfig()
    max_rows_per_file: int = Field(50_000, ge=1)


class RunnerConfig(_Strict):
    """Where shards run: local threads (default) or a Ray cluster through prefect-ray."""

    kind: Literal["threads", "ray"] = "threads"
    max_workers: int = Field(2, ge=1, description="shards generated at once (threads runner)")
    ray_address: str | None = Field(None, description="e.g. 127.0.0.1:6379; None starts a local Ray")


class BuildConfig(_Strict):
    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    selection: PromptFilter = PromptFilter()
    samples_per_prompt: int = Field(1, ge=1)
    shard_size: int = Field(16, ge=1)
    generation: GenerationConfig
    verification: VerificationConfig = VerificationConfig()
    output: OutputConfig = OutputConfig()
    lineage: LineageConfig = LineageConfig()
    runner: RunnerConfig = RunnerConfig()
    catalog_path: str | None = Field(None, description="default: $TESSY_CATALOG or ./var/catalog.duckdb")
    work_dir: str = Field("./var/builds", description="local staging of shards and checkpoints")


def load_build_config(path: str | Path) -> BuildConfig:
    return BuildConfig.model_validate(yaml.safe_load(Path(path).read_text()))

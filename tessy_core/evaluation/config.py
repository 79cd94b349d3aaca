"""The typed configuration of an SFT evaluation (one YAML file, every field has a default).

    base:         the student to fine-tune (default: the student the version was built for)
    problems:     the held-out problems, a catalog selection (default: source `eval`)
    training:     TRL SFTTrainer settings: device, precision, batch size, steps, learning rate
    sampling:     how base and fine-tuned student answer each problem (same for both)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from tessy_core.catalog.prompts import PromptFilter
from tessy_core.config import ModelFamily, ThinkingMarkers
from tessy_core.publish import LineageConfig, StorageConfig
from tessy_core.strict import Strict

Precision = Literal["fp32", "bf16", "fp16"]


class BaseModelConfig(Strict):
    """The student before fine-tuning. Unset fields come from the version's manifest (its student)."""

    name: str | None = None
    path: str | None = Field(None, description="local folder or hub id; default: the version's student")
    family: ModelFamily | None = Field(None, description="decides the thinking markers; default: the version's")
    markers: ThinkingMarkers | None = Field(None, description="override the family's thinking markers")
    revision: str | None = None


class ProblemsConfig(Strict):
    """Held-out problems from the catalog. Each needs hidden tests; none may be in the version."""

    selection: PromptFilter = PromptFilter(sources=["eval"])
    limit: int | None = Field(None, ge=1, description="the first N selected problems (ordered by prompt_id)")


class TrainingConfig(Strict):
    """TRL SFTTrainer on the version's `messages`, loss on the assistant turn only."""

    device: str = Field("cpu", description="cpu, cuda, cuda:0, ...")
    precision: Precision = Field("fp32", description="fp32, or bf16/fp16 weights and mixed precision on GPUs")
    max_steps: int | None = Field(60, ge=1, description="optimizer steps; None: `epochs` passes over the data")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1, description="per-device batch size")
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(2048, ge=16, description="tokens per example (longer ones are truncated)")
    gradient_checkpointing: bool = False
    chat_template: str | None = Field(
        None,
        description="Jinja file of the student's chat template with {% generation %} markers; default: the "
        "tokenizer's own when it has them, TRL's training variant of it, or tessy's ChatML one when that "
        "renders exactly like the tokenizer's",
    )
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch CPU threads while training")
    logging_steps: int = Field(10, ge=1)


class EvalSamplingConfig(Strict):
    """How each model answers: the same problems, settings and seeds for the base and the fine-tuned."""

    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.8, gt=0, le=1)
    top_k: int = Field(20, ge=0)
    max_new_tokens: int = Field(1024, ge=8, description="thinking + answer")
    samples_per_problem: int = Field(1, ge=1, description="n: answers per problem and repeat")
    pass_k: list[int] = Field(default_factory=lambda: [1], description="pass@k figures to report (k <= n)")
    repeats: int = Field(1, ge=1, description="independent sampling rounds (seed, seed+1, ...): mean and spread")
    seed: int = 0
    batch_size: int = Field(16, ge=1, description="prompts generated at once")
    device: str | None = Field(None, description="default: training.device")
    precision: Precision | None = Field(None, description="default: training.precision")

    @model_validator(mode="after")
    def _k_fits_n(self) -> "EvalSamplingConfig":
        bad = [k for k in self.pass_k if k < 1 or k > self.samples_per_problem]
        if bad or not self.pass_k:
            raise ValueError(
                f"pass_k {self.pass_k}: every k must be between 1 and samples_per_problem ({self.samples_per_problem})"
            )
        return self


class EvaluationConfig(Strict):
    base: BaseModelConfig = BaseModelConfig()
    problems: ProblemsConfig = ProblemsConfig()
    training: TrainingConfig = TrainingConfig()
    sampling: EvalSamplingConfig = EvalSamplingConfig()
    sandbox_workers: int = Field(2, ge=1)
    datasets_base: str = Field("./var/datasets", description="where the versions are published")
    storage: StorageConfig = StorageConfig()
    catalog_path: str | None = Field(None, description="default: $TESSY_CATALOG or ./var/catalog.duckdb")
    work_dir: str = Field("./var/evaluations", description="exports, fine-tuned students, per-sample outputs")
    lineage: LineageConfig = LineageConfig()
    update_card: bool = Field(True, description="add the evaluation to the version's dataset card")
    reuse: bool = Field(True, description="reuse a fine-tuned student / base figures of the same identity")

    def identity(self) -> dict[str, Any]:
        """What shapes the figures, as plain JSON (not where files go, nor how many sandbox workers)."""
        return self.model_dump(
            mode="json",
            exclude={**{key: True for key in ("sandbox_workers", "storage", "catalog_path", "work_dir", "lineage",
                                              "update_card", "reuse")},
                     "training": {"threads", "logging_steps"}},
        )

    def identity_hash(self) -> str:
        return digest(self.identity())


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_evaluation_config(path: str | Path | None) -> EvaluationConfig:
    if path is None:
        return EvaluationConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    return EvaluationConfig.model_validate(data)

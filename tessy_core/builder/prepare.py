"""The first step of a build: select prompts and plan shards, or pick up the unfinished build of this config."""

from __future__ import annotations

from pathlib import Path

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.lineage import BuildLineage
from tessy_core.builder.progress import report
from tessy_core.builder.resplit import remaining_samples, resplit_remaining
from tessy_core.builder.results import PreparedBuild
from tessy_core.builder.shards import auto_shard_size, plan_build, shard_requests
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import (
    Catalog,
    ModelSpec,
    PredictorSpec,
    PromptFilter,
    PromptRecord,
    SampleOutcome,
    SampleOutcomeRow,
    build_samples,
    default_catalog_path,
    find_resumable_build,
    record_build_start,
    register_model,
    register_predictor,
    select_prompts,
    upsert_build_samples,
)
from tessy_core.identity import config_hash
from tessy_core.publish import new_run_id


def open_catalog(config: BuildConfig) -> Catalog:
    return Catalog(config.catalog_path or default_catalog_path())


def prepare_build(config: BuildConfig) -> PreparedBuild:
    """Select prompts and plan the build, or pick up the unfinished build of this same config.

    Registers the models and predictors first, so a name clash in the catalog fails the build
    before any generation, as does an output format no version store is registered for. Marks the
    build running and its samples pending.
    """
    from tessy_core.publish.store import version_store

    version_store(config.output)  # an unknown `output.format` fails here, not after generating
    catalog = open_catalog(config)
    identity = config.identity()
    identity_hash = config_hash(identity)
    _register_components(catalog, config)
    mode = config.generation.engine.mode.value

    resumable = find_resumable_build(catalog, config.dataset, identity)
    prompts: list[PromptRecord] = []
    if resumable is not None:
        # The selection is taken from the build itself: with `new_prompts_only` a fresh selection
        # would skip exactly the prompts this unfinished build holds.
        used = sorted({sample.prompt_id for sample in build_samples(catalog, resumable)})
        prompts = select_prompts(catalog, PromptFilter(prompt_ids=used)) if used else []
    if not prompts:
        resumable = None
        prompts = select_prompts(catalog, config.prompt_filter())
    lineage_run_id = new_run_id()
    if not prompts:
        return PreparedBuild(
            build_id="", dataset=config.dataset, identity_hash=identity_hash, work_dir=config.work_dir,
            catalog_path=str(catalog.path), lineage_run_id=lineage_run_id,
        )
    plan = plan_build(
        config.dataset, prompts, config_hash=identity_hash, generation_hash=config.generation.config_hash(),
        samples_per_prompt=config.samples_per_prompt,
        shard_size=shard_size_for(config, len(prompts) * config.samples_per_prompt),
    )
    workspace = BuildWorkspace(Path(config.work_dir), plan.build_id)
    plan = workspace.freeze_plan(plan, prompts)
    by_id = {p.prompt_id: p for p in prompts}
    shards_done = [shard for shard in plan.shards if workspace.shard_done(shard.shard_id) is not None]
    samples_done = sum(len(workspace.finished_records(shard.shard_id)) for shard in plan.shards)
    if samples_done or shards_done:
        left = remaining_samples(workspace, plan, by_id, mode)
        resplit = resplit_remaining(workspace, plan, by_id, mode, shard_size_for(config, left))
        if resplit.changed:
            plan = resplit.plan
            report("stage", plan.build_id, stage="resplit", **resplit.to_record())

    record_build_start(catalog, plan.build_id, config.dataset, identity)
    if resumable is None:
        pending = [
            SampleOutcomeRow(
                sample_id=request.sample_id, prompt_id=request.prompt_id,
                sample_index=request.sample_index, outcome=SampleOutcome.PENDING,
            )
            for shard in plan.shards
            for request in shard_requests(plan, shard, by_id, mode)
        ]
        known = {sample.sample_id for sample in build_samples(catalog, plan.build_id)}
        upsert_build_samples(catalog, plan.build_id, [s for s in pending if s.sample_id not in known])

    prepared = PreparedBuild(
        build_id=plan.build_id, dataset=config.dataset, identity_hash=identity_hash, work_dir=config.work_dir,
        catalog_path=str(catalog.path), plan=plan, resumed=bool(shards_done or samples_done or resumable),
        shards_already_done=len(shards_done), samples_already_done=samples_done, lineage_run_id=lineage_run_id,
    )
    BuildLineage(config, catalog).start(prepared)
    report(
        "planned", plan.build_id, samples=prepared.total_samples, shards=len(plan.shards),
        samples_done=samples_done, shards_done=len(shards_done),
    )
    return prepared


def shard_size_for(config: BuildConfig, samples: int) -> int:
    """The config's shard size, or one that gives every worker of the runner several shards of
    `samples` (the whole build when planning, the remaining work when resuming)."""
    if config.shard_size is not None:
        return config.shard_size
    return auto_shard_size(
        samples, workers=config.runner.max_workers, concurrency=config.generation.engine.concurrency,
        samples_per_prompt=config.samples_per_prompt,
    )


def _register_components(catalog: Catalog, config: BuildConfig) -> None:
    generation = config.generation
    for model in (generation.teacher, generation.student):
        register_model(
            catalog,
            ModelSpec(name=model.name, family=model.family.value, path_or_hf_id=model.path, revision=model.revision),
        )
    for role, model, predictor in (
        ("teacher", generation.teacher, generation.teacher_predictor),
        ("student", generation.student, generation.student_predictor),
    ):
        if predictor is not None and predictor.kind == "learned" and predictor.path:
            register_predictor(
                catalog,
                PredictorSpec(
                    name=Path(predictor.path).name, version=_predictor_version(predictor.path),
                    path=predictor.path, role=role, base_model=model.name,
                ),
            )


def _predictor_version(path: str) -> str:
    """A learned predictor's weights folder, identified by the hash of its config and file sizes."""
    folder = Path(path)
    if not folder.is_dir():
        return "unknown"
    entries = sorted((f.name, f.stat().st_size) for f in folder.iterdir() if f.is_file())
    return config_hash({"files": entries})[:12]

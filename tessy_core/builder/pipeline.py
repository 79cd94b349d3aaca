"""The steps of a dataset build as plain functions: the Prefect flow (`flows/build.py`) only composes them.

    prepared = prepare_build(config)                 # select prompts (or resume), plan, register
    for shard in prepared.plan.shards:               # anywhere: threads, a Ray cluster
        generate_shard(config, prepared.build_id, shard.shard_id)
    result = finish_build(config, prepared, shard_summaries)   # validate, publish, account, lineage

Every sample of a build ends in the catalog as published, rejected (with the reason) or failed
(with the reason). A build killed at any point is continued by running the same config again:
`prepare_build` finds the unfinished build and its frozen plan, `generate_shard` skips finished
shards and finished samples, and `finish_build` never publishes a second version for one build.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.progress import report
from tessy_core.builder.resplit import remaining_samples, resplit_remaining
from tessy_core.builder.shards import auto_shard_size, plan_build, run_shard, shard_requests
from tessy_core.builder.workspace import BuildPlan, BuildWorkspace
from tessy_core.catalog import (
    BuildStatus,
    Catalog,
    DatasetVersion,
    LineageEvent,
    ModelSpec,
    PredictorSpec,
    PromptFilter,
    PromptRecord,
    SampleOutcome,
    SampleResult,
    build_accounting,
    build_samples,
    config_hash,
    default_catalog_path,
    find_resumable_build,
    record_build_finish,
    record_build_start,
    record_lineage_event,
    register_dataset_version,
    register_model,
    register_predictor,
    select_prompts,
    unfinished_lineage_runs,
    upsert_build_samples,
)
from tessy_core.publish import (
    BuildInfo,
    LineageDataset,
    LineageEmitter,
    PublishConfig,
    PublishedVersion,
    Publisher,
    new_run_id,
    version_dataset,
)
from tessy_core.publish.naming import version_dir
from tessy_core.publish.reader import list_versions, read_manifest
from tessy_core.quality.expectations import TRAIN, SuiteResult, ValidationPolicy, run_suite, with_style
from tessy_core.quality.policy import split_by_policy
from tessy_core.quality.style import gate_version_style

JOB_PREFIX = "tessy-build"
PUBLISHED_SPLIT = TRAIN


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PreparedBuild(_Model):
    """A planned (or resumed) build: what the shard steps and the final step need to know."""

    build_id: str
    dataset: str
    identity_hash: str
    work_dir: str
    catalog_path: str
    plan: BuildPlan | None = Field(None, description="None when the selection matched no prompt")
    resumed: bool = False
    shards_already_done: int = 0
    samples_already_done: int = 0
    lineage_run_id: str

    @property
    def total_samples(self) -> int:
        return len(self.plan.prompt_ids) * self.plan.samples_per_prompt if self.plan else 0


class ShardTally(_Model):
    """A shard's staged samples as the publish policy labels them (before the version-wide style gate
    and suite): what its task's state message says."""

    publishable: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: dict[str, dict[str, int]] = Field(default_factory=dict, description="rejected/failed -> reason -> n")
    examples: dict[str, list[str]] = Field(default_factory=dict, description="reason -> first sample ids")
    retried: int = Field(0, description="samples that needed more than one attempt")

    @property
    def total(self) -> int:
        return self.publishable + self.rejected + self.failed


class ShardSummary(_Model):
    shard_id: str
    samples: int
    skipped: bool = Field(description="finished by an earlier run of this build")
    resumed_with: int = 0
    samples_ok: int = 0
    samples_failed: int = 0
    models: dict[str, dict[str, int]] = Field(default_factory=dict)
    wall_s: float = 0.0
    failure_reasons: dict[str, int] = Field(default_factory=dict, description="generation failures by reason")
    servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="role -> the HTTP backend's model id and per-replica counters"
    )
    identities: dict[str, str] = Field(default_factory=dict, description="model and predictor ids, config hash")
    tally: ShardTally | None = Field(None, description="the shard's samples under the publish policy")


class BuildResult(_Model):
    """What a build produced: the return value of `build_dataset` and the JSON of `tessy build`."""

    build_id: str | None
    dataset: str
    status: Literal["published", "blocked", "empty"]
    message: str
    resumed: bool = False
    counts: dict[str, int] = Field(default_factory=dict, description="outcome -> samples (catalog accounting)")
    reasons: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="rejected/failed -> reason -> samples"
    )
    version: str | None = Field(None, description="NAME@vN")
    version_number: int | None = None
    uri: str | None = None
    already_published: bool = Field(False, description="an earlier run of this build had published it")
    usage: dict[str, dict[str, int]] = Field(default_factory=dict, description="model role -> requests/tokens")
    figures: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    shards: dict[str, int] = Field(default_factory=dict)
    wall_s: float = 0.0
    examples: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="rejected/failed -> reason -> the first sample ids"
    )
    rejected_uri: str | None = Field(None, description="Parquet of every sample not published, with reasons")
    servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="role -> server-side requests/tokens/errors/failovers and endpoints"
    )
    identities: dict[str, str] = Field(default_factory=dict, description="model and predictor ids, config hash")


# --- prepare ------------------------------------------------------------------------------------


def open_catalog(config: BuildConfig) -> Catalog:
    return Catalog(config.catalog_path or default_catalog_path())


def prepare_build(config: BuildConfig) -> PreparedBuild:
    """Select prompts and plan the build, or pick up the unfinished build of this same config.

    Registers the models and predictors first, so a name clash in the catalog fails the build
    before any generation. Marks the build running and its samples pending.
    """
    catalog = open_catalog(config)
    identity = config.identity()
    identity_hash = config_hash(identity)
    _register_components(catalog, config)

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
    shards_done = [shard for shard in plan.shards if workspace.shard_done(shard.shard_id) is not None]
    samples_done = sum(len(workspace.finished_records(shard.shard_id)) for shard in plan.shards)
    if samples_done or shards_done:
        by_id = {p.prompt_id: p for p in prompts}
        left = remaining_samples(workspace, plan, by_id, _mode(config))
        resplit = resplit_remaining(workspace, plan, by_id, _mode(config), shard_size_for(config, left))
        if resplit.changed:
            plan = resplit.plan
            report("stage", plan.build_id, stage="resplit", **resplit.to_record())

    record_build_start(catalog, plan.build_id, config.dataset, identity)
    if resumable is None:
        pending = [
            SampleResult(
                sample_id=request.sample_id, prompt_id=request.prompt_id,
                sample_index=request.sample_index, outcome=SampleOutcome.PENDING,
            )
            for shard in plan.shards
            for request in shard_requests(plan, shard, {p.prompt_id: p for p in prompts}, _mode(config))
        ]
        known = {sample.sample_id for sample in build_samples(catalog, plan.build_id)}
        upsert_build_samples(catalog, plan.build_id, [s for s in pending if s.sample_id not in known])

    prepared = PreparedBuild(
        build_id=plan.build_id, dataset=config.dataset, identity_hash=identity_hash, work_dir=config.work_dir,
        catalog_path=str(catalog.path), plan=plan, resumed=bool(shards_done or samples_done or resumable),
        shards_already_done=len(shards_done), samples_already_done=samples_done, lineage_run_id=lineage_run_id,
    )
    _lineage(config, catalog).start(prepared)
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


def _mode(config: BuildConfig) -> str:
    return config.generation.engine.mode.value


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


# --- generate -----------------------------------------------------------------------------------


def generate_shard(config: BuildConfig, build_id: str, shard_id: str) -> ShardSummary:
    """Generate and verify one shard's missing samples into the build's workspace.

    Runs wherever the runner places it; needs the models, the work dir and a sandbox, not the
    catalog. A finished shard returns its stored summary without loading anything.
    """
    workspace = BuildWorkspace(Path(config.work_dir), build_id)
    plan = workspace.load_plan()
    if plan is None:
        raise FileNotFoundError(f"{workspace.dir}: no plan.json; run prepare_build first")
    shard = next((s for s in plan.shards if s.shard_id == shard_id), None)
    if shard is None:
        raise KeyError(f"build {build_id} has no shard {shard_id!r}")
    done = workspace.shard_done(shard_id)
    if done is not None:
        return _shard_summary(done, skipped=True, tally=shard_tally(config, workspace, shard_id))

    staged = len(workspace.finished_records(shard_id))
    report(
        "shard_started", build_id, shard_id=shard_id, prompts=len(shard.prompt_ids),
        samples=len(shard.sample_ids) if shard.sample_ids is not None else len(shard.prompt_ids) * plan.samples_per_prompt,
        kept_from_earlier_runs=staged, servers=_endpoints(config),
        predictors={role: _predictor_label(p) for role, p in (
            ("teacher", config.generation.teacher_predictor), ("student", config.generation.student_predictor))},
    )

    def on_sample(record: dict[str, Any]) -> None:
        verdict = (record.get("verification") or {}).get("verdict")
        report(
            "sample", build_id, shard_id=shard_id, sample_id=record["sample_id"], status=record["status"],
            verdict=verdict, failure_reason=record.get("failure_reason"), attempts=record.get("attempts", 1),
            attempt_failures=list(record.get("attempt_failures") or []),
        )

    summary = asyncio.run(_run_shard_verified(config, workspace, plan, shard, on_sample))
    result = _shard_summary(summary, skipped=False, tally=shard_tally(config, workspace, shard_id))
    report("shard_finished", build_id, shard_id=shard_id, summary=result.model_dump(mode="json"))
    return result


EXAMPLES_PER_REASON = 5


def shard_tally(config: BuildConfig, workspace: BuildWorkspace, shard_id: str) -> ShardTally:
    """The shard's staged samples labelled by the publish policy: publishable, rejected, failed,
    with reasons and the first sample ids of each."""
    records = list(workspace.finished_records(shard_id).values())
    if not records:
        return ShardTally()
    rows = [
        {
            "sample_id": r.get("sample_id"), "status": r.get("status"), "failure_reason": r.get("failure_reason"),
            "assistant": r.get("assistant"), "answer": r.get("answer"),
            "verdict": (r.get("verification") or {}).get("verdict"),
        }
        for r in records
    ]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})
    frame = frame.with_columns(pl.struct(pl.col("verdict")).alias("verification")).drop("verdict")
    labelled = split_by_policy(frame, config.validation)
    tally: dict[str, Any] = {"publishable": 0, "rejected": 0, "failed": 0, "reasons": {}, "examples": {}}
    for row in labelled.select("sample_id", "status", "split", "rejection_reason").iter_rows(named=True):
        if row["status"] != "ok":
            kind = "failed"
        elif row["split"] == TRAIN:
            tally["publishable"] += 1
            continue
        else:
            kind = "rejected"
        tally[kind] += 1
        reason = _reason_code(row["rejection_reason"] or "")
        counts = tally["reasons"].setdefault(kind, {})
        counts[reason] = counts.get(reason, 0) + 1
        ids = tally["examples"].setdefault(reason, [])
        if len(ids) < EXAMPLES_PER_REASON:
            ids.append(row["sample_id"])
    tally["retried"] = sum(1 for r in records if (r.get("attempts") or 1) > 1)
    return ShardTally(**tally)


def _endpoints(config: BuildConfig) -> dict[str, str]:
    """Per role, where the model is served (or that it runs in this process), for logs."""
    labels = {}
    for role, model in (("teacher", config.generation.teacher), ("student", config.generation.student)):
        where = ", ".join(model.endpoints) if model.endpoints else "in-process"
        labels[role] = f"{model.name} ({model.backend}: {where})"
    return labels


def _predictor_label(predictor) -> str:
    if predictor is None:
        return "none"
    return f"{predictor.kind}" + (f" {predictor.path}" if getattr(predictor, "path", None) else "")


async def _run_shard_verified(config, workspace, plan, shard, on_sample) -> dict[str, Any]:
    if not config.verification.enabled:
        return await run_shard(workspace, plan, shard, config.generation, on_sample=on_sample)
    from tessy_core.verify import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(workers=config.verification.workers)) as sandbox:
        verifier = SandboxVerifier(sandbox, config.verification.language)
        return await run_shard(workspace, plan, shard, config.generation, verifier=verifier, on_sample=on_sample)


class SandboxVerifier:
    """Runs an answer's program on its prompt's tests. Never raises: a sandbox failure on one
    sample becomes that sample's `verifier_error` verdict (it is then rejected, not lost)."""

    def __init__(self, sandbox, language: str) -> None:
        self.sandbox = sandbox
        self.language = language

    async def __call__(self, prompt: PromptRecord, answer: str) -> dict[str, Any]:
        from tessy_core.verify import ExecutionLimits, verify_answer_async

        if not prompt.tests:
            return {"verdict": "no_tests", "passed": 0, "total": 0, "details_json": "{}"}
        limits = ExecutionLimits(time_limit_s=prompt.time_limit_s, memory_limit_mb=prompt.memory_limit_mb)
        tests = [test.model_dump() for test in prompt.tests]
        try:
            result = await verify_answer_async(self.sandbox, answer, tests, limits, language=self.language,
                                               source=prompt.source)  # its comparison (comparison_by_source)
        except Exception as error:  # noqa: BLE001 - isolated per sample by design
            details = json.dumps({"message": f"{type(error).__name__}: {error}"})
            return {"verdict": "verifier_error", "passed": 0, "total": len(tests), "details_json": details}
        return result.to_record()


def _shard_summary(summary: dict[str, Any], skipped: bool, tally: ShardTally | None = None) -> ShardSummary:
    return ShardSummary(
        shard_id=summary["shard_id"], samples=summary["samples"], skipped=skipped,
        resumed_with=summary.get("resumed_with", 0), samples_ok=summary.get("samples_ok", 0),
        samples_failed=summary.get("samples_failed", 0), models=summary.get("models", {}),
        wall_s=summary.get("wall_s", 0.0), failure_reasons=summary.get("failure_reasons", {}),
        servers=summary.get("servers", {}), identities=summary.get("identities", {}), tally=tally,
    )


# --- validate -----------------------------------------------------------------------------------

ROW_COLUMNS = (
    "sample_id", "prompt_id", "sample_index", "mode", "status", "failure_reason", "messages", "problem",
    "thinking", "answer", "assistant", "answer_role", "spans", "usage", "identities", "attempts",
    "attempt_failures", "wall_s", "teacher_token_share", "verification",
)


def sample_table(workspace: BuildWorkspace, plan: BuildPlan, policy: ValidationPolicy) -> pl.DataFrame:
    """Every staged sample of the build, labelled `train` (to publish) or `rejected`, with the
    reason of each rejection in `rejection_reason`."""
    rows = []
    for record in workspace.iter_records(plan):
        row = {column: record.get(column) for column in ROW_COLUMNS}
        row["build_id"] = plan.build_id
        rows.append(row)
    if not rows:
        raise ValueError(f"build {plan.build_id}: no staged samples to validate")
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return label_splits(frame, policy)


def label_splits(frame: pl.DataFrame, policy: ValidationPolicy) -> pl.DataFrame:
    """Which samples the version publishes under `policy.publish`; the others say why not."""
    return split_by_policy(frame, policy)


def validate_samples(frame: pl.DataFrame, policy: ValidationPolicy) -> SuiteResult:
    return run_suite(frame, policy)


def quality_figures(frame: pl.DataFrame, policy: ValidationPolicy) -> dict[str, Any]:
    """Per-version figures for the card, the artifacts and the result."""
    generated = frame.filter(pl.col("status") == "ok")
    published = frame.filter(pl.col("split") == TRAIN)
    verdicts: Counter[str] = Counter()
    if isinstance(frame.schema.get("verification"), pl.Struct):
        verdicts.update(
            v or "missing" for v in generated.get_column("verification").struct.field("verdict").to_list()
        )
    accepted = verdicts.get(policy.accepted_verdict, 0)

    def mean(df: pl.DataFrame, expr: pl.Expr) -> float | None:
        value = df.select(expr.mean()).item() if df.height else None
        return round(float(value), 4) if value is not None else None

    interleaved = generated.filter(pl.col("mode") == policy.interleaved_mode)
    published_accepted = 0
    if published.height and isinstance(frame.schema.get("verification"), pl.Struct):
        published_accepted = published.filter(
            pl.col("verification").struct.field("verdict") == policy.accepted_verdict
        ).height
    rejected = generated.filter(pl.col("split") != TRAIN).height

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "samples": frame.height,
        "generated": generated.height,
        "published": published.height,
        "pass_rate": share(accepted, generated.height),
        "pass_rate_all": share(accepted, frame.height),
        "pass_rate_published": share(published_accepted, published.height),
        "publish_rate": share(published.height, frame.height),
        "failed_share": share(frame.height - generated.height, frame.height),
        "rejected_share": share(rejected, frame.height),
        "verdicts": dict(sorted(verdicts.items())),
        "teacher_token_share_mean": mean(interleaved, pl.col("teacher_token_share")),
        "thinking_chars_mean": mean(published, pl.col("thinking").str.len_chars()),
        "answer_chars_mean": mean(published, pl.col("answer").str.len_chars()),
        "attempts_mean": mean(frame, pl.col("attempts")),
    }


def usage_by_model(shards: list[ShardSummary]) -> dict[str, dict[str, int]]:
    """Requests and tokens per model role over the shards run by this invocation."""
    totals: dict[str, Counter[str]] = {}
    for shard in shards:
        for role, usage in shard.models.items():
            totals.setdefault(role, Counter()).update(usage)
    return {role: dict(counter) for role, counter in sorted(totals.items())}


def usage_from_records(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Requests and tokens per model role over every sample of the build (all runs of it)."""
    totals: dict[str, Counter[str]] = {}
    for usage in frame.get_column("usage").to_list():
        for role, counts in (usage or {}).items():
            if counts:
                totals.setdefault(role, Counter()).update({k: v for k, v in counts.items() if v is not None})
    return {role: dict(counter) for role, counter in sorted(totals.items())}


# --- publish and account ------------------------------------------------------------------------


def finish_build(config: BuildConfig, prepared: PreparedBuild, shards: list[ShardSummary]) -> BuildResult:
    """Validate every staged sample, publish the version, and account for every sample."""
    started = time.perf_counter()
    if prepared.plan is None:
        return BuildResult(
            build_id=None, dataset=config.dataset, status="empty",
            message=f"no prompt in the catalog matches the selection of {config.dataset!r}"
            + (" that earlier builds have not used" if config.new_prompts_only else ""),
        )
    catalog = open_catalog(config)
    plan = prepared.plan
    workspace = BuildWorkspace(Path(config.work_dir), plan.build_id)
    missing = [s.shard_id for s in plan.shards if workspace.shard_done(s.shard_id) is None]
    if missing:
        raise RuntimeError(f"build {plan.build_id}: shards {missing[:5]} are not finished; run them first")
    report("stage", plan.build_id, stage="validate")
    policy = config.validation
    frame = sample_table(workspace, plan, policy)
    if policy.style is not None:
        report("stage", plan.build_id, stage="style gate")
    style_started = time.perf_counter()
    style = gate_version_style(frame, config.generation, policy.style)
    if style is not None:
        report("stage", plan.build_id, stage="style gate done", seconds=round(time.perf_counter() - style_started, 1),
               samples_scored=style.version.get("samples_scored"), passed=style.success)
    if style is not None:  # samples failing a per-sample style limit move to `rejected`, with the reason
        frame = split_by_policy(frame, policy, extra_reasons=style.sample_rejections)
    suite = with_style(validate_samples(frame, policy), style)
    figures = quality_figures(frame, policy)
    figures["style"] = dict(style.version) if style is not None else None
    usage = usage_from_records(frame)
    validation = {
        "success": suite.success,
        "on_failure": suite.on_failure,
        "failed_checks": suite.failed_checks,
        "checks": [
            o.model_dump(include={"check", "success", "observed", "threshold", "error"}) for o in suite.outcomes
        ],
        "summary_markdown": suite.summary_markdown,
        "gx_result": suite.gx_result,
    }
    published: PublishedVersion | None = None
    already = False
    if not suite.blocks_publish:
        report("stage", plan.build_id, stage="publish")
        published, already = publish_version(config, plan, frame, figures, validation, usage)
        register_dataset_version(
            catalog,
            DatasetVersion(
                name=published.manifest.name, version=version_dir(published.manifest.version), uri=published.uri,
                manifest_checksum=_manifest_checksum(published), row_counts=published.manifest.row_counts,
                parent_version=version_dir(published.manifest.parent_version) if published.manifest.parent_version else None,
                build_id=plan.build_id, created_at=published.manifest.created_at,
            ),
        )
    outcomes = sample_outcomes(frame, blocked_checks=None if published else suite.failed_checks)
    upsert_build_samples(catalog, plan.build_id, outcomes)
    accounting = record_build_finish(
        catalog, plan.build_id, BuildStatus.SUCCEEDED if published else BuildStatus.FAILED
    )
    lineage = _lineage(config, catalog)
    if published is not None:
        lineage.complete(prepared, published)
    else:
        lineage.fail(prepared, f"validation blocked the version: failed checks {suite.failed_checks}")

    reasons: dict[str, Counter[str]] = {"rejected": Counter(), "failed": Counter()}
    examples: dict[str, dict[str, list[str]]] = {}
    for outcome in outcomes:
        if outcome.outcome in (SampleOutcome.REJECTED, SampleOutcome.FAILED):
            code = _reason_code(outcome.reason or "")
            reasons[outcome.outcome.value][code] += 1
            ids = examples.setdefault(outcome.outcome.value, {}).setdefault(code, [])
            if len(ids) < EXAMPLES_PER_REASON:
                ids.append(outcome.sample_id)
    rejected_uri = write_rejected(workspace, frame)
    counts = accounting.model_dump(exclude={"build_id"})
    ran = [s for s in shards if not s.skipped]
    result = BuildResult(
        build_id=plan.build_id,
        dataset=config.dataset,
        status="published" if published else "blocked",
        message=(
            f"published {published.ref} ({counts['published']} samples)" if published
            else f"validation failed ({', '.join(suite.failed_checks)}); nothing published"
        ),
        resumed=prepared.resumed,
        counts=counts,
        reasons={kind: dict(sorted(c.items())) for kind, c in reasons.items() if c},
        version=str(published.ref) if published else None,
        version_number=published.manifest.version if published else None,
        uri=published.uri if published else None,
        already_published=already,
        usage=usage,
        figures=figures,
        validation={k: v for k, v in validation.items() if k != "gx_result"},
        shards={
            "total": len(plan.shards), "ran": len(ran), "skipped": len(shards) - len(ran),
            "samples_generated_now": sum(s.samples_ok + s.samples_failed for s in ran),
            "samples_kept_from_earlier_runs": sum(s.resumed_with for s in ran) + sum(s.samples for s in shards if s.skipped),
        },
        examples=examples,
        rejected_uri=rejected_uri,
        servers=server_usage(shards),
        identities=next((dict(s.identities) for s in shards if s.identities), {}),
    )
    result.wall_s = round(time.perf_counter() - started, 3)
    return result


REJECTED_FILE = "rejected.parquet"


def write_rejected(workspace: BuildWorkspace, frame: pl.DataFrame) -> str | None:
    """Every sample the version does not publish (rejected and failed), with `rejection_reason`, as
    one Parquet file in the build's work dir; its `file://` URI (None when every sample published)."""
    rejected = frame.filter(pl.col("split") != TRAIN)
    if rejected.height == 0:
        return None
    path = workspace.dir / REJECTED_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    rejected.write_parquet(tmp)
    tmp.replace(path)
    return path.resolve().as_uri()


SERVER_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "errors", "failovers")


def server_usage(shards: list[ShardSummary]) -> dict[str, dict[str, Any]]:
    """Per role, what the model servers reported over the shards' last runs: counters summed over
    replicas and shards, the served model id and the endpoints. Empty for in-process models."""
    totals: dict[str, dict[str, Any]] = {}
    for shard in shards:
        for role, stats in shard.servers.items():
            entry = totals.setdefault(role, {"model_id": stats.get("model_id"), "endpoints": [],
                                             **{c: 0 for c in SERVER_COUNTERS}})
            for url, replica in (stats.get("replicas") or {}).items():
                if url not in entry["endpoints"]:
                    entry["endpoints"].append(url)
                for counter in SERVER_COUNTERS:
                    entry[counter] += int(replica.get(counter) or 0)
    return dict(sorted(totals.items()))


def publish_version(
    config: BuildConfig,
    plan: BuildPlan,
    frame: pl.DataFrame,
    figures: dict[str, Any],
    validation: dict[str, Any],
    usage: dict[str, dict[str, int]],
) -> tuple[PublishedVersion, bool]:
    """Publish the `train` rows as the dataset's next version; (version, True) when an earlier run
    of this build had already published one (a crash after publishing must not publish twice)."""
    publisher = Publisher(
        config.output.base_uri, config.output.storage, PublishConfig(max_rows_per_file=config.output.max_rows_per_file)
    )
    existing = find_published_version(config, plan.build_id)
    if existing is not None:
        return PublishedVersion(publisher.base_uri, existing), True
    train = frame.filter(pl.col("split") == TRAIN).drop("split", "rejection_reason", "status", "failure_reason")
    info = BuildInfo(
        build_id=plan.build_id,
        build_config=config.identity(),
        models={
            role: {
                "name": m.name, "path": m.path, "family": m.family.value, "revision": m.revision,
                # What the chat template was rendered with (effort, pinned date, system message).
                "template_options": m.template_options.model_dump(mode="json"),
            }
            for role, m in (("teacher", config.generation.teacher), ("student", config.generation.student))
        },
        predictors={
            role: p.model_dump(mode="json")
            for role, p in (
                ("teacher", config.generation.teacher_predictor), ("student", config.generation.student_predictor)
            )
            if p is not None
        },
        validation=validation,
        figures={**figures, "usage": usage},
        description=config.description,
    )
    return publisher.publish(config.dataset, {PUBLISHED_SPLIT: train}, info), False


def find_published_version(config: BuildConfig, build_id: str):
    """The manifest of the version `build_id` published, if any (newest versions looked at first)."""
    base, storage = config.output.base_uri, config.output.storage
    for number in reversed(list_versions(base, config.dataset, storage=storage)):
        manifest = read_manifest(base, config.dataset, number, storage=storage)
        if manifest.build_id == build_id:
            return manifest
    return None


def sample_outcomes(frame: pl.DataFrame, blocked_checks: list[str] | None) -> list[SampleResult]:
    """Catalog outcomes: `train` rows are published (or rejected when validation blocked the
    version), generation failures are failed, the other rows are rejected with their reason."""
    outcomes = []
    for row in frame.select("sample_id", "prompt_id", "sample_index", "status", "split", "rejection_reason").iter_rows(
        named=True
    ):
        if row["status"] != "ok":
            outcome, reason = SampleOutcome.FAILED, row["rejection_reason"]
        elif row["split"] == TRAIN and blocked_checks is None:
            outcome, reason = SampleOutcome.PUBLISHED, None
        elif row["split"] == TRAIN:
            outcome, reason = SampleOutcome.REJECTED, f"validation blocked the version: {', '.join(blocked_checks)}"
        else:
            outcome, reason = SampleOutcome.REJECTED, row["rejection_reason"]
        outcomes.append(
            SampleResult(
                sample_id=row["sample_id"], prompt_id=row["prompt_id"], sample_index=row["sample_index"],
                outcome=outcome, reason=reason,
            )
        )
    return outcomes


def fail_build(config: BuildConfig, prepared: PreparedBuild, error: BaseException) -> None:
    """Record a build that stopped on an error: status failed (resumable), lineage FAIL."""
    if prepared.plan is None:
        return
    catalog = open_catalog(config)
    record_build_finish(catalog, prepared.build_id, BuildStatus.FAILED)
    _lineage(config, catalog).fail(prepared, error)


def accounting_counts(config: BuildConfig, build_id: str) -> dict[str, int]:
    return build_accounting(open_catalog(config), build_id).model_dump(exclude={"build_id"})


def _reason_code(reason: str) -> str:
    """`generation failed: repetition: ...` -> `generation failed: repetition`."""
    head, _, rest = reason.partition(": ")
    return f"{head}: {rest.split(':', 1)[0]}" if rest else head


def _manifest_checksum(published: PublishedVersion) -> str:
    import hashlib

    return hashlib.sha256(published.manifest.to_json_bytes()).hexdigest()


# --- lineage ------------------------------------------------------------------------------------


class _Lineage:
    """OpenLineage events of a build, also stored in the catalog's lineage table."""

    def __init__(self, config: BuildConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.emitter = LineageEmitter(config.lineage)
        self.job = f"{JOB_PREFIX}.{config.dataset}"

    def _input(self, prepared: PreparedBuild) -> LineageDataset:
        return LineageDataset(
            namespace=f"duckdb://{Path(prepared.catalog_path).resolve()}",
            name="prompts",
            version=prepared.build_id,
            row_count=len(prepared.plan.prompt_ids) if prepared.plan else 0,
        )

    def start(self, prepared: PreparedBuild) -> None:
        for killed in unfinished_lineage_runs(self.catalog, self.job, prepared.build_id):
            reason = f"the run stopped without ending (killed?); run {prepared.lineage_run_id} resumes the build"
            self._store(self.emitter.abort(killed, self.job, reason), "ABORT", inputs=["prompts"])
        event = self.emitter.start(prepared.lineage_run_id, self.job, [self._input(prepared)])
        self._store(event, "START", inputs=["prompts"])

    def complete(self, prepared: PreparedBuild, published: PublishedVersion) -> None:
        output = version_dataset(published)
        event = self.emitter.complete(prepared.lineage_run_id, self.job, [self._input(prepared)], [output])
        self._store(event, "COMPLETE", inputs=["prompts"], outputs=[output.name])

    def fail(self, prepared: PreparedBuild, error: BaseException | str) -> None:
        event = self.emitter.fail(prepared.lineage_run_id, self.job, error)
        self._store(event, "FAIL", inputs=["prompts"])

    def _store(self, event: dict[str, Any], kind: str, inputs: list[str], outputs: list[str] | None = None) -> None:
        record_lineage_event(
            self.catalog,
            LineageEvent(
                run_id=event["run"]["runId"], event_type=kind, job_name=self.job,
                inputs=inputs, outputs=outputs or [], payload=event,
            ),
        )


def _lineage(config: BuildConfig, catalog: Catalog) -> _Lineage:
    return _Lineage(config, catalog)

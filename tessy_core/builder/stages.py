"""The whole-version stages of a build: each a plain function over the `Version` on its way, run once
after every shard has staged its rows, in the order `VERSION_STAGES` declares.

    version = start_version(config, prepared, shards)
    for stage in VERSION_STAGES:            # the Prefect flow runs each as its own task
        version = stage.run(version)
    result = build_result(version)

A stage reads what the stages before it added and adds its own part. Each is safe to run again
after a crash: `publish` finds the version an earlier run of this build published instead of
publishing a second one, and the catalog writes are upserts.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.lineage import BuildLineage
from tessy_core.builder.prepare import open_catalog
from tessy_core.builder.progress import report
from tessy_core.builder.results import (
    EXAMPLES_PER_REASON,
    BuildResult,
    PreparedBuild,
    ShardSummary,
    reason_code,
)
from tessy_core.builder.workspace import BuildPlan, BuildWorkspace
from tessy_core.catalog import (
    BuildStatus,
    DatasetVersion,
    SampleOutcome,
    SampleOutcomeRow,
    record_build_finish,
    register_dataset_version,
    upsert_build_samples,
)
from tessy_core.quality.expectations import TRAIN, ValidationPolicy

if TYPE_CHECKING:
    import polars as pl

    from tessy_core.publish import PublishedVersion
    from tessy_core.quality.expectations import SuiteResult
    from tessy_core.quality.style import StyleReport

PUBLISHED_SPLIT = TRAIN
REJECTED_FILE = "rejected.parquet"


@dataclass
class Version:
    """A version on its way through the stages: the build it comes from and what each stage added."""

    config: BuildConfig
    prepared: PreparedBuild
    shards: list[ShardSummary]
    started: float = field(default_factory=time.perf_counter)
    frame: pl.DataFrame | None = None  # every staged row, labelled `train` or `rejected` (stage_rows)
    style: StyleReport | None = None  # style_gate
    suite: SuiteResult | None = None  # validate
    figures: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    published: PublishedVersion | None = None  # publish
    already_published: bool = False
    outcomes: list[SampleOutcomeRow] = field(default_factory=list)  # account
    counts: dict[str, int] = field(default_factory=dict)
    rejected_uri: str | None = None  # keep_rejected

    @property
    def plan(self) -> BuildPlan:
        assert self.prepared.plan is not None, "an empty build has no version stages"
        return self.prepared.plan

    @property
    def workspace(self) -> BuildWorkspace:
        return BuildWorkspace(Path(self.config.work_dir), self.plan.build_id)


def start_version(config: BuildConfig, prepared: PreparedBuild, shards: list[ShardSummary]) -> Version:
    return Version(config=config, prepared=prepared, shards=shards)


# --- the stages ---------------------------------------------------------------------------------


def stage_rows(version: Version) -> Version:
    """Every staged row of the build as one table, labelled by the publish policy."""
    workspace, plan = version.workspace, version.plan
    missing = [s.shard_id for s in plan.shards if workspace.shard_done(s.shard_id) is None]
    if missing:
        raise RuntimeError(f"build {plan.build_id}: shards {missing[:5]} are not finished; run them first")
    report("stage", plan.build_id, stage="validate")
    version.frame = sample_table(workspace, plan, version.config.validation)
    return version


def style_gate(version: Version) -> Version:
    """The style-consistency figures and checks over the rows' staged style scores; samples over a
    per-sample limit move to `rejected`."""
    from tessy_core.quality.policy import split_by_policy
    from tessy_core.quality.style import gate_version_style

    policy = version.config.validation
    if policy.style is None:
        return version
    build_id = version.plan.build_id
    report("stage", build_id, stage="style gate")
    started = time.perf_counter()
    style = gate_version_style(version.frame, policy.style, student_tokenizer(version))
    report("stage", build_id, stage="style gate done", seconds=round(time.perf_counter() - started, 1),
           samples_scored=style.version.get("samples_scored"), passed=style.success)
    version.style = style
    version.frame = split_by_policy(version.frame, policy, extra_reasons=style.sample_rejections)
    return version


def student_tokenizer(version: Version):
    """text -> the student's token ids, for the TF-IDF similarity (None when no row has a reference)."""
    import polars as pl

    if version.frame.filter(pl.col("student_reference").is_not_null()).height == 0:
        return None
    from tessy_core.chat import load_tokenizer

    model = version.config.generation.student
    tokenizer = load_tokenizer(model.path, model.revision)
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


def validate(version: Version) -> Version:
    """The GX suite (with the style checks folded in), the version's figures and its model usage."""
    from tessy_core.quality.expectations import run_suite, with_style

    policy = version.config.validation
    suite = with_style(run_suite(version.frame, policy), version.style)
    version.suite = suite
    version.figures = quality_figures(version.frame, policy)
    version.figures["style"] = dict(version.style.version) if version.style is not None else None
    version.usage = usage_from_records(version.frame)
    version.validation = {
        "success": suite.success,
        "on_failure": suite.on_failure,
        "failed_checks": suite.failed_checks,
        "checks": [
            o.model_dump(include={"check", "success", "observed", "threshold", "error"}) for o in suite.outcomes
        ],
        "summary_markdown": suite.summary_markdown,
        "gx_result": suite.gx_result,
    }
    return version


def publish(version: Version) -> Version:
    """The `train` rows as the dataset's next version, unless validation blocks it."""
    if version.suite.blocks_publish:
        return version
    report("stage", version.plan.build_id, stage="publish")
    version.published, version.already_published = publish_version(
        version.config, version.plan, version.frame, version.figures, version.validation, version.usage
    )
    return version


def register_version(version: Version) -> Version:
    """The published version in the catalog, with its build."""
    published = version.published
    if published is None:
        return version
    manifest = published.manifest
    from tessy_core.publish.naming import version_dir

    register_dataset_version(
        open_catalog(version.config),
        DatasetVersion(
            name=manifest.name, version=version_dir(manifest.version), uri=published.uri,
            manifest_checksum=hashlib.sha256(manifest.to_json_bytes()).hexdigest(),
            row_counts=manifest.row_counts,
            parent_version=version_dir(manifest.parent_version) if manifest.parent_version else None,
            build_id=version.plan.build_id, created_at=manifest.created_at,
        ),
    )
    return version


def account(version: Version) -> Version:
    """Every sample's outcome in the catalog, and the build closed with its final status."""
    catalog = open_catalog(version.config)
    blocked = None if version.published else version.suite.failed_checks
    version.outcomes = sample_outcomes(version.frame, blocked_checks=blocked)
    upsert_build_samples(catalog, version.plan.build_id, version.outcomes)
    status = BuildStatus.SUCCEEDED if version.published else BuildStatus.FAILED
    version.counts = record_build_finish(catalog, version.plan.build_id, status).model_dump(exclude={"build_id"})
    return version


def lineage(version: Version) -> Version:
    """The run's OpenLineage COMPLETE (with the version as output) or FAIL."""
    emitter = BuildLineage(version.config, open_catalog(version.config))
    if version.published is not None:
        emitter.complete(version.prepared, version.published)
    else:
        emitter.fail(version.prepared, f"validation blocked the version: failed checks {version.suite.failed_checks}")
    return version


def keep_rejected(version: Version) -> Version:
    """Every sample the version does not publish (rejected and failed), with `rejection_reason`, as
    one Parquet file in the build's work dir (none when every sample published)."""
    import polars as pl

    rejected = version.frame.filter(pl.col("split") != TRAIN)
    if rejected.height:
        path = version.workspace.dir / REJECTED_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        rejected.write_parquet(tmp)
        tmp.replace(path)
        version.rejected_uri = path.resolve().as_uri()
    return version


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Version], Version]


VERSION_STAGES: tuple[Stage, ...] = (
    Stage("stage-rows", stage_rows),
    Stage("style-gate", style_gate),
    Stage("validate", validate),
    Stage("publish", publish),
    Stage("register-version", register_version),
    Stage("account", account),
    Stage("lineage", lineage),
    Stage("keep-rejected", keep_rejected),
)


def build_result(version: Version) -> BuildResult:
    """What the build produced, from a version that went through every stage."""
    published, plan, counts = version.published, version.plan, version.counts
    reasons: dict[str, Counter[str]] = {"rejected": Counter(), "failed": Counter()}
    examples: dict[str, dict[str, list[str]]] = {}
    for outcome in version.outcomes:
        if outcome.outcome in (SampleOutcome.REJECTED, SampleOutcome.FAILED):
            code = reason_code(outcome.reason or "")
            reasons[outcome.outcome.value][code] += 1
            ids = examples.setdefault(outcome.outcome.value, {}).setdefault(code, [])
            if len(ids) < EXAMPLES_PER_REASON:
                ids.append(outcome.sample_id)
    shards = version.shards
    ran = [s for s in shards if not s.skipped]
    return BuildResult(
        build_id=plan.build_id,
        dataset=version.config.dataset,
        status="published" if published else "blocked",
        message=(
            f"published {published.ref} ({counts['published']} samples)" if published
            else f"validation failed ({', '.join(version.suite.failed_checks)}); nothing published"
        ),
        resumed=version.prepared.resumed,
        counts=counts,
        reasons={kind: dict(sorted(c.items())) for kind, c in reasons.items() if c},
        version=str(published.ref) if published else None,
        version_number=published.manifest.version if published else None,
        uri=published.uri if published else None,
        already_published=version.already_published,
        usage=version.usage,
        figures=version.figures,
        validation={k: v for k, v in version.validation.items() if k != "gx_result"},
        shards={
            "total": len(plan.shards), "ran": len(ran), "skipped": len(shards) - len(ran),
            "samples_generated_now": sum(s.samples_ok + s.samples_failed for s in ran),
            "samples_kept_from_earlier_runs": sum(s.resumed_with for s in ran) + sum(s.samples for s in shards if s.skipped),
        },
        examples=examples,
        rejected_uri=version.rejected_uri,
        servers=server_usage(shards),
        identities=next((dict(s.identities) for s in shards if s.identities), {}),
        wall_s=round(time.perf_counter() - version.started, 3),
    )


# --- what the stages are made of ----------------------------------------------------------------


def sample_table(workspace: BuildWorkspace, plan: BuildPlan, policy: ValidationPolicy) -> pl.DataFrame:
    """Every staged row of the build (`StagedSample` columns and `build_id`), labelled `train` (to
    publish) or `rejected`, with the reason of each rejection in `rejection_reason`."""
    import polars as pl

    from tessy_core.quality.policy import split_by_policy
    from tessy_core.rows import StagedSample, polars_schema

    rows = [
        {**StagedSample.model_validate(record).model_dump(mode="json"), "build_id": plan.build_id}
        for record in workspace.iter_records(plan)
    ]
    if not rows:
        raise ValueError(f"build {plan.build_id}: no staged samples to validate")
    frame = pl.DataFrame(rows, schema_overrides=polars_schema(), infer_schema_length=None)
    return split_by_policy(frame, policy)


def quality_figures(frame: pl.DataFrame, policy: ValidationPolicy) -> dict[str, Any]:
    """Per-version figures for the card, the artifacts and the result."""
    import polars as pl

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


def usage_from_records(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Requests and tokens per model role over every sample of the build (all runs of it)."""
    totals: dict[str, Counter[str]] = {}
    for usage in frame.get_column("usage").to_list():
        for role, counts in (usage or {}).items():
            if counts:
                totals.setdefault(role, Counter()).update({k: v for k, v in counts.items() if v is not None})
    return {role: dict(counter) for role, counter in sorted(totals.items())}


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
    import polars as pl

    from tessy_core.publish import BuildInfo
    from tessy_core.publish.store import version_store

    store = version_store(config.output)
    existing = store.find_build(config.dataset, plan.build_id)
    if existing is not None:
        return existing, True
    from tessy_core.rows import unpublished_columns

    train = frame.filter(pl.col("split") == TRAIN).drop(
        "split", "rejection_reason", "status", "failure_reason", *unpublished_columns(), strict=False
    )
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
    return store.publish(config.dataset, {PUBLISHED_SPLIT: train}, info), False


def sample_outcomes(frame: pl.DataFrame, blocked_checks: list[str] | None) -> list[SampleOutcomeRow]:
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
            SampleOutcomeRow(
                sample_id=row["sample_id"], prompt_id=row["prompt_id"], sample_index=row["sample_index"],
                outcome=outcome, reason=reason,
            )
        )
    return outcomes

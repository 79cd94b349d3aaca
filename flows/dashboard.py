"""What a build shows in the Prefect UI: the run's name and tags, tessy's progress in the run and task
logs, shard states that say their counts, and the artifacts on the flow run.

Everything here only presents; the figures come from `tessy_core.builder` (pipeline, report). Nothing
here may fail a build: a UI call that fails is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.states import Completed

from tessy_core.builder import report
from tessy_core.builder.config import BuildConfig
from tessy_core.builder.pipeline import BuildResult, ShardSummary
from tessy_core.builder.progress import BuildEvent
from tessy_core.quality.expectations import ValidationPolicy

# Tags this module owns on a run (replaced when the run is relabelled); others (a deployment's) stay.
TAG_PREFIXES = ("dataset:", "version:", "teacher:", "student:", "mode:", "config:", "status:")
FAILURES_LOGGED_PER_REASON = 3
RETRIES_LOGGED = 5
PROGRESS_LINES = 4  # progress lines per shard, besides its start and end


# --- naming and tagging -------------------------------------------------------------------------


def planned_version(config: BuildConfig) -> int | None:
    """The version number this build will publish if it publishes (the next free one now)."""
    from tessy_core.publish.store import version_store

    try:
        versions = version_store(config.output).list_versions(config.dataset)
    except Exception:  # noqa: BLE001 - a name is a label; storage problems surface in the build itself
        return None
    return (versions[-1] + 1) if versions else 1


def run_name(config: BuildConfig, version: int | None, result: BuildResult | None = None) -> str:
    """`dataset@vN`, with the outcome once it is known and not a clean publish."""
    name = f"{config.dataset}@v{version}" if version else config.dataset
    if result is None:
        return name
    label = report.status_label(result)
    return name if label == "published" else f"{name} ({label.lower()})"


def run_tags(config: BuildConfig, version: int | None, result: BuildResult | None = None) -> list[str]:
    from tessy_core.catalog import config_hash

    generation = config.generation
    tags = [
        f"dataset:{config.dataset}",
        f"version:v{version}" if version and (result is None or result.version) else "version:none",
        f"teacher:{generation.teacher.name}",
        f"student:{generation.student.name}",
        f"mode:{generation.engine.mode.value}",
        f"config:{config_hash(config.identity())[:12]}",
    ]
    if result is not None:
        tags.append(f"status:{report.status_label(result).lower().replace(' ', '-')}")
    return tags


def label_run(config: BuildConfig, version: int | None, *, result: BuildResult | None = None,
              logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Name and tag the current flow run for what it builds (and, with `result`, how it went)."""
    from prefect import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    kept = [t for t in (context.flow_run.tags or []) if not t.startswith(TAG_PREFIXES)]
    tags = kept + run_tags(config, version, result)
    name = run_name(config, version, result)
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, name=name, tags=tags)
        context.flow_run.name, context.flow_run.tags = name, tags
    except Exception as error:  # noqa: BLE001 - a label must not fail a build
        if logger is not None:
            logger.warning("could not name and tag the run %s: %s", name, error)


# --- shard states -------------------------------------------------------------------------------


def shard_message(summary: ShardSummary) -> str:
    """`shard-00001: 16 samples: 5 publishable, 2 rejected (verification: wrong_answer 2), 9 failed
    (generation failed: thinking_token_cap 9); 3 retried`."""
    tally = summary.tally
    if tally is None or tally.total == 0:
        return f"{summary.shard_id}: {summary.samples} samples, none staged"

    def reasons(kind: str) -> str:
        top = sorted((tally.reasons.get(kind) or {}).items(), key=lambda kv: -kv[1])[:3]
        return f" ({', '.join(f'{reason} {n}' for reason, n in top)})" if top else ""

    text = (
        f"{summary.shard_id}: {tally.total} samples: {tally.publishable} publishable, "
        f"{tally.rejected} rejected{reasons('rejected')}, {tally.failed} failed{reasons('failed')}"
    )
    if tally.retried:
        text += f"; {tally.retried} retried"
    if summary.skipped:
        text += "; finished by an earlier run"
    return text


def shard_over_thresholds(summary: ShardSummary, policy: ValidationPolicy) -> bool:
    tally = summary.tally
    if tally is None or tally.total == 0:
        return False
    return (tally.failed / tally.total > policy.max_failed_share
            or tally.rejected / tally.total > policy.max_rejected_share)


def shard_state(summary: ShardSummary, policy: ValidationPolicy, *, failed_name: str):
    """The shard task's final state: Completed, named `failed_name` when the shard alone is past the
    build's failed or rejected share threshold; the message gives its counts and top reasons."""
    name = failed_name if shard_over_thresholds(summary, policy) else "Completed"
    return Completed(name=name, message=shard_message(summary), data=summary)


# --- logs ---------------------------------------------------------------------------------------


class ShardLog:
    """Writes one shard's build events to its Prefect task run logger: what it runs on, progress,
    failures with reasons (the first few per reason), retries, and its summary with server counters."""

    def __init__(self, logger, build_id: str, shard_id: str) -> None:
        self.logger = logger
        self.build_id = build_id
        self.shard_id = shard_id
        self.total = 0
        self.done = 0
        self.failed: Counter[str] = Counter()
        self.retries_logged = 0
        self.next_progress = 1
        self._lock = threading.Lock()

    def __call__(self, event: BuildEvent) -> None:
        if event.build_id != self.build_id or event.data.get("shard_id") != self.shard_id:
            return
        with self._lock:
            try:
                getattr(self, f"_on_{event.kind}", lambda data: None)(event.data)
            except Exception:  # noqa: BLE001 - a log line must never fail a shard
                logging.getLogger(__name__).exception("could not log %s", event.kind)

    def _on_shard_started(self, data: dict[str, Any]) -> None:
        self.total = max(0, data.get("samples", 0) - data.get("kept_from_earlier_runs", 0))
        self.next_progress = max(1, self.total // (PROGRESS_LINES + 1))
        servers = "; ".join(f"{role} {where}" for role, where in (data.get("servers") or {}).items())
        predictors = "; ".join(f"{role} {what}" for role, what in (data.get("predictors") or {}).items())
        self.logger.info(
            "%s: %d samples to generate (%d prompts, %d kept from an earlier run); models: %s; predictors: %s",
            self.shard_id, self.total, data.get("prompts", 0), data.get("kept_from_earlier_runs", 0),
            servers or "-", predictors or "-",
        )

    def _on_sample(self, data: dict[str, Any]) -> None:
        self.done += 1
        sample = data.get("sample_id")
        attempts = data.get("attempts") or 1
        if data.get("status") != "ok":
            reason = (data.get("failure_reason") or "unknown").split(":", 1)[0]
            self.failed[reason] += 1
            if self.failed[reason] <= FAILURES_LOGGED_PER_REASON:
                self.logger.warning(
                    "%s: sample %s failed after %d attempt(s): %s", self.shard_id, sample, attempts,
                    _clip(data.get("failure_reason") or "unknown"),
                )
            elif self.failed[reason] == FAILURES_LOGGED_PER_REASON + 1:
                self.logger.warning("%s: more samples failed with %s (counted, not logged one by one)",
                                    self.shard_id, reason)
        elif attempts > 1 and self.retries_logged < RETRIES_LOGGED:
            self.retries_logged += 1
            failures = "; ".join(_clip(f, 80) for f in data.get("attempt_failures") or [])
            self.logger.info("%s: sample %s retried, done on attempt %d (earlier attempts: %s)",
                             self.shard_id, sample, attempts, failures or "-")
        if self.done % self.next_progress == 0 and self.done < self.total:
            self.logger.info("%s: %d/%d samples done, %d failed%s", self.shard_id, self.done, self.total,
                             sum(self.failed.values()), _reasons(self.failed))

    def _on_shard_finished(self, data: dict[str, Any]) -> None:
        summary = ShardSummary.model_validate(data["summary"])
        self.logger.info(
            "%s finished in %.1f s: %d done now (%d ok, %d failed%s); %s", self.shard_id, summary.wall_s,
            summary.samples_ok + summary.samples_failed, summary.samples_ok, summary.samples_failed,
            _reasons(Counter(summary.failure_reasons)), shard_message(summary),
        )
        for role, stats in summary.servers.items():
            for url, replica in (stats.get("replicas") or {}).items():
                self.logger.info(
                    "%s: %s server %s (%s): %d requests, %d prompt + %d completion tokens, %d errors, %d failovers%s",
                    self.shard_id, role, url, stats.get("model_id"), replica.get("requests", 0),
                    replica.get("prompt_tokens", 0), replica.get("completion_tokens", 0), replica.get("errors", 0),
                    replica.get("failovers", 0),
                    f", last error: {_clip(replica['last_error'])}" if replica.get("last_error") else "",
                )
        if summary.identities:
            self.logger.info("%s: identities %s", self.shard_id,
                             ", ".join(f"{k}={v}" for k, v in summary.identities.items()))


class BuildLog:
    """Writes the build's own stages (plan, resplit, validate, publish) to the flow run logger."""

    def __init__(self, logger) -> None:
        self.logger = logger

    def __call__(self, event: BuildEvent) -> None:
        try:
            if event.kind == "planned":
                d = event.data
                self.logger.info(
                    "build %s: %d samples in %d shards (%d samples and %d shards done by earlier runs)",
                    event.build_id, d.get("samples", 0), d.get("shards", 0), d.get("samples_done", 0),
                    d.get("shards_done", 0),
                )
            elif event.kind == "stage":
                details = {k: v for k, v in event.data.items() if k != "stage"}
                self.logger.info("build %s: %s%s", event.build_id, event.data.get("stage"),
                                 f" {details}" if details else "")
        except Exception:  # noqa: BLE001 - a log line must never fail a build
            logging.getLogger(__name__).exception("could not log %s", event.kind)


def log_headline(logger, result: BuildResult) -> None:
    level = {"BLOCKED": logging.ERROR, "published with failures": logging.WARNING}.get(
        report.status_label(result), logging.INFO)
    logger.log(level, "%s", report.state_message(result))
    for figure, value in report.headline_rows(result):
        logger.info("  %s: %s", figure, value)
    per = "per published sample" if result.counts.get("published") else "in all (nothing published)"
    for cost in report.cost_rows(result):
        logger.info("  cost %s, %s: %s requests, %s tokens generated; server-side %s prompt + %s completion tokens",
                    per, cost["model"], cost["requests"], cost["tokens generated"], cost["server prompt tokens"],
                    cost["server completion tokens"])
    if result.rejected_uri:
        logger.info("  samples not published, with reasons: %s", result.rejected_uri)


# --- artifacts ----------------------------------------------------------------------------------


def ui_url() -> str | None:
    from prefect.settings import get_current_settings

    url = get_current_settings().ui_url
    return url.rstrip("/") if url else None


def publish_artifacts(config: BuildConfig, result: BuildResult, key: str, *, logger) -> dict[str, Any]:
    """Every artifact of the build, on the flow run, each key and description naming the dataset
    (and version). Created oldest first in reading order: report, version link, card, validation,
    outcomes, quality, usage, trend. Returns the artifact ids by kind (and the links)."""
    subject = result.version or (
        f"{result.dataset} (build {result.build_id}, nothing published)" if result.build_id else result.dataset
    )
    ids: dict[str, Any] = {}
    base_ui = ui_url()
    links: dict[str, str] = {}
    card = None
    if result.version:
        try:
            card = report.card_markdown(config, result)
        except Exception as error:  # noqa: BLE001 - the version exists; its card is a convenience
            logger.warning("could not render the card of %s: %s", result.version, error)
    console = report.console_link(config.output.console_url, result.uri)
    if console:
        links[f"{result.version} in the storage console"] = console

    points: list[report.TrendPoint] = []
    if result.status != "empty":
        try:
            points = report.trend_points(config, result)
        except Exception as error:  # noqa: BLE001
            logger.warning("could not read the version history of %s: %s", result.dataset, error)

    def attempt(kind: str, make) -> None:
        try:
            ids[kind] = make()
        except Exception as error:  # noqa: BLE001 - an artifact must not fail a build
            logger.warning("could not create the %s artifact of %s: %s", kind, subject, error)

    # The card first: the report and the version link point at its page.
    if card is not None:
        attempt("card", lambda: create_markdown_artifact(
            card, key=f"{key}-card", description=f"{subject}: dataset card, where the version is, how to load it"))
        if base_ui and ids.get("card"):
            links = {f"{result.version} dataset card": f"{base_ui}/artifacts/artifact/{ids['card']}", **links}
    attempt("report", lambda: create_markdown_artifact(
        report.report_markdown(result, trend=points, links=links), key=f"{key}-report",
        description=f"{subject}: build report ({report.status_label(result)})"))
    if links:
        text, link = next(reversed(links.items())) if console else next(iter(links.items()))
        attempt("version", lambda: create_link_artifact(
            link, link_text=text, key=f"{key}-version",
            description=f"{subject}: the published version ({report.version_uri(result)})"))
    if result.validation.get("checks"):
        attempt("validation", lambda: create_table_artifact(
            report.validation_rows(result), key=f"{key}-validation",
            description=f"{subject}: every check, observed value vs threshold"))
    if result.status != "empty":
        attempt("outcomes", lambda: create_table_artifact(
            report.outcome_rows(result), key=f"{key}-outcomes",
            description=f"{subject}: samples per outcome, top reasons, first sample ids"))
    if result.figures:
        attempt("quality", lambda: create_table_artifact(
            report.figure_rows(result), key=f"{key}-quality", description=f"{subject}: quality figures"))
    if result.usage:
        attempt("model-usage", lambda: create_table_artifact(
            report.usage_rows(result), key=f"{key}-model-usage",
            description=f"{subject}: requests and tokens per model, per published sample, server-side"))
    if points:
        attempt("trend", lambda: create_table_artifact(
            report.trend_rows(points), key=f"{key}-trend",
            description=f"{result.dataset}: the last {len(points)} builds up to {subject}"))
        attempt("trend-chart", lambda: create_markdown_artifact(
            report.trend_markdown(result.dataset, points), key=f"{key}-trend-chart",
            description=f"{result.dataset}: figures of the last {len(points)} builds up to {subject}"))
    log_headline(logger, result)
    for text, link in links.items():
        logger.info("  %s: %s", text, link)
    if result.uri:
        logger.info("  version: %s", report.version_uri(result))
    ids["links"] = links
    return ids


def _reasons(counter: Counter) -> str:
    if not counter:
        return ""
    return " (" + ", ".join(f"{reason} {n}" for reason, n in counter.most_common(3)) + ")"


def _clip(text: str, limit: int = 200) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""A build's OpenLineage events (START, COMPLETE, FAIL, ABORT of killed runs), also kept in the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.results import PreparedBuild
from tessy_core.catalog import (
    Catalog,
    LineageEvent,
    record_lineage_event,
    unfinished_lineage_runs,
)
from tessy_core.publish import (
    LineageDataset,
    LineageEmitter,
    PublishedVersion,
    version_dataset,
)

JOB_PREFIX = "tessy-build"


class BuildLineage:
    def __init__(self, config: BuildConfig, catalog: Catalog) -> None:
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

"""OpenLineage run events for builds: START, then COMPLETE (with the published version) or FAIL;
ABORT closes a run whose process was killed (sent by the run that resumes its build).

Each call sends the event through the configured transport and returns it as a plain dict, which
the catalog can store in its lineage table.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.transport import Transport
from openlineage.client.uuid import generate_new_uuid
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessy_core.publish.manifest import package_version
from tessy_core.publish.naming import version_dir
from tessy_core.publish.publisher import PublishedVersion

DEFAULT_LINEAGE_DIR = "./var/lineage"
EVENTS_FILE = "events.jsonl"


class LineageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["file", "http", "console"] = "file"
    directory: str = Field(DEFAULT_LINEAGE_DIR, description=f"file transport: events go to DIR/{EVENTS_FILE}")
    url: str | None = Field(None, description="http transport: e.g. http://marquez:5000")
    endpoint: str = "api/v1/lineage"
    api_key: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    namespace: str = Field("tessy", description="namespace of the jobs")
    producer: str = Field(f"urn:tessy:{package_version()}", description="URI naming what emitted the events")

    @model_validator(mode="after")
    def _http_needs_url(self) -> LineageConfig:
        if self.transport == "http" and not self.url:
            raise ValueError("lineage transport 'http' needs `url`")
        return self


class LineageDataset(BaseModel):
    """A dataset as lineage sees it; the optional figures become facets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    name: str
    columns: dict[str, str] = Field(default_factory=dict, description="column -> type, for the schema facet")
    version: str | None = None
    row_count: int | None = None
    file_count: int | None = None
    size_bytes: int | None = None


def new_run_id() -> str:
    return str(generate_new_uuid())


def version_dataset(published: PublishedVersion) -> LineageDataset:
    """The output dataset of a publish: namespace = base URI, name = NAME/vN."""
    manifest = published.manifest
    columns: dict[str, str] = {}
    for entry in manifest.splits.values():
        for column, dtype in entry.columns.items():
            columns.setdefault(column, dtype)
    return LineageDataset(
        namespace=_as_uri(published.base_uri),
        name=f"{manifest.name}/{version_dir(manifest.version)}",
        columns=columns,
        version=version_dir(manifest.version),
        row_count=sum(manifest.row_counts.values()),
        file_count=len(manifest.files),
        size_bytes=manifest.total_bytes,
    )


class LineageEmitter:
    def __init__(self, config: LineageConfig | None = None) -> None:
        self.config = config or LineageConfig()
        self._client = OpenLineageClient(transport=_transport(self.config))

    def start(self, run_id: str, job_name: str, inputs: list[LineageDataset]) -> dict[str, Any]:
        return self._emit(RunState.START, run_id, job_name, inputs=inputs)

    def complete(
        self, run_id: str, job_name: str, inputs: list[LineageDataset], outputs: list[LineageDataset]
    ) -> dict[str, Any]:
        return self._emit(RunState.COMPLETE, run_id, job_name, inputs=inputs, outputs=outputs)

    def fail(self, run_id: str, job_name: str, error: BaseException | str) -> dict[str, Any]:
        if isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
            stack = "".join(traceback.format_exception(error))
        else:
            message, stack = error, None
        facet = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", stackTrace=stack, producer=self.config.producer
        )
        return self._emit(RunState.FAIL, run_id, job_name, run_facets={"errorMessage": facet})

    def abort(self, run_id: str, job_name: str, reason: str) -> dict[str, Any]:
        facet = error_message_run.ErrorMessageRunFacet(
            message=reason, programmingLanguage="python", producer=self.config.producer
        )
        return self._emit(RunState.ABORT, run_id, job_name, run_facets={"errorMessage": facet})

    def _emit(
        self,
        state: RunState,
        run_id: str,
        job_name: str,
        *,
        inputs: Sequence[LineageDataset] = (),
        outputs: Sequence[LineageDataset] = (),
        run_facets: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        UUID(run_id)  # OpenLineage requires a UUID; fail here with a plain ValueError
        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(timezone.utc).isoformat(),
            run=Run(runId=run_id, facets=run_facets or {}),
            job=Job(namespace=self.config.namespace, name=job_name),
            inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=self._facets(d)) for d in inputs],
            outputs=[self._output(d) for d in outputs],
            producer=self.config.producer,
        )
        self._client.emit(event)
        return Serde.to_dict(event)

    def _facets(self, dataset: LineageDataset) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if dataset.columns:
            fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in dataset.columns.items()]
            facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields, producer=self.config.producer)
        if dataset.version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=dataset.version, producer=self.config.producer
            )
        return facets

    def _output(self, dataset: LineageDataset) -> OutputDataset:
        output_facets = {}
        if dataset.row_count is not None:
            output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=dataset.row_count,
                size=dataset.size_bytes,
                fileCount=dataset.file_count,
                producer=self.config.producer,
            )
        return OutputDataset(
            namespace=dataset.namespace, name=dataset.name, facets=self._facets(dataset), outputFacets=output_facets
        )


def _transport(config: LineageConfig) -> Transport:
    if config.transport == "file":
        directory = Path(config.directory)
        directory.mkdir(parents=True, exist_ok=True)
        # One JSON line per event, appended: safe for concurrent builds as long as an event is
        # written in one write(2), which holds for events of ordinary size.
        return FileTransport(FileConfig(log_file_path=str(directory / EVENTS_FILE), append=True))
    if config.transport == "http":
        http = {"url": config.url, "endpoint": config.endpoint, "timeout": config.timeout_s}
        if config.api_key:
            http["auth"] = {"type": "api_key", "apiKey": config.api_key}
        return HttpTransport(HttpConfig.from_dict(http))
    return ConsoleTransport(ConsoleConfig())


def _as_uri(base: str) -> str:
    return base if "://" in base else Path(base).resolve().as_uri()

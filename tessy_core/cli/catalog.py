"""`tessy catalog ...`: ingest prompt files and inspect the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tessy_core.cli.output import console, emit, fail
from tessy_core.enums import RowFormat

if TYPE_CHECKING:
    from tessy_core.catalog import Catalog, IngestReport

app = typer.Typer(help="The prompt catalog: ingest prompt files, inspect what is stored.", no_args_is_help=True)

CatalogPath = Annotated[
    Path | None,
    typer.Option("--catalog", help="catalog file (default: $TESSY_CATALOG, else ./var/catalog.duckdb)"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def _open(catalog_path: Path | None) -> Catalog:
    from tessy_core.catalog import Catalog, default_catalog_path

    return Catalog(catalog_path or default_catalog_path())


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="JSONL (.jsonl, .jsonl.gz) or Parquet files")],
    source: Annotated[str, typer.Option("--source", help="name recorded as the prompts' source")],
    row_format: Annotated[
        RowFormat, typer.Option("--format", help="row shape; auto detects it per row from its keys")
    ] = RowFormat.AUTO,
    max_statement_chars: Annotated[
        int | None, typer.Option(help="reject statements longer than this (default: the ingest config's)")
    ] = None,
    catalog_path: CatalogPath = None,
    as_json: JsonFlag = False,
) -> None:
    """Add the prompts of PATH... to the catalog; bad rows are kept in the rejects table."""
    from tessy_core.catalog import CatalogError, IngestConfig, ingest
    from tessy_core.catalog.files import UnsupportedInput

    catalog = _open(catalog_path)
    try:
        config = IngestConfig() if max_statement_chars is None else IngestConfig(max_statement_chars=max_statement_chars)
        if as_json:
            report = ingest(catalog, paths, source, row_format, config)
        else:
            with console.status("ingesting") as status:
                report = ingest(
                    catalog,
                    paths,
                    source,
                    row_format,
                    config,
                    on_progress=lambda r: status.update(f"ingesting: {r.read:,} rows read, {r.added:,} added"),
                )
    except (FileNotFoundError, UnsupportedInput, CatalogError, ValueError) as error:
        fail(str(error), as_json)
    emit({"ok": True, "catalog": str(catalog.path), "source": source, **report.model_dump()}, as_json, _report_table(report))


def _report_table(report: IngestReport) -> Table:
    table = Table("rows", "count", title="ingest")
    for label, count in (("read", report.read), ("added", report.added), ("duplicates", report.duplicates)):
        table.add_row(label, f"{count:,}")
    table.add_row("rejected", f"{report.rejected:,}")
    for reason, count in report.rejected_by_reason.items():
        table.add_row(f"  {reason}", f"{count:,}")
    return table


@app.command("stats")
def stats_command(catalog_path: CatalogPath = None, as_json: JsonFlag = False) -> None:
    """Prompts per source, rejects per reason, and the size of every registry."""
    from tessy_core.catalog import CatalogError, catalog_stats

    catalog = _open(catalog_path)
    try:
        stats = catalog_stats(catalog)
    except CatalogError as error:
        fail(str(error), as_json)
    table = Table("source", "prompts", "with tests", "with call tests", title=f"catalog {catalog.path}")
    for row in stats.sources:
        table.add_row(row.source, f"{row.prompts:,}", f"{row.with_tests:,}", f"{row.with_call_tests:,}")
    table.caption = (
        f"{stats.prompts:,} prompts, {stats.rejects:,} rejected rows, {stats.builds:,} builds, "
        f"{stats.dataset_versions:,} dataset versions, {stats.models:,} models, {stats.predictors:,} predictors"
    )
    emit({"ok": True, "catalog": str(catalog.path), **stats.model_dump()}, as_json, table)


@app.command("rejects")
def rejects_command(
    limit: Annotated[int, typer.Option(min=1, help="how many rows to show, newest first")] = 20,
    source: Annotated[str | None, typer.Option(help="only rows of this source")] = None,
    catalog_path: CatalogPath = None,
    as_json: JsonFlag = False,
) -> None:
    """The rows ingestion refused, with the reason, file, line and original text."""
    from tessy_core.catalog import CatalogError, list_rejects

    catalog = _open(catalog_path)
    try:
        rejects = list_rejects(catalog, limit=limit, source=source)
    except CatalogError as error:
        fail(str(error), as_json)
    table = Table("file:line", "reason", "row", title="rejected rows")
    for row in rejects:
        snippet = row.raw_text if len(row.raw_text) <= 80 else row.raw_text[:77] + "..."
        table.add_row(f"{Path(row.source_file).name}:{row.line_no}", f"{row.reason_code}: {row.reason}", snippet)
    payload = {"ok": True, "catalog": str(catalog.path), "rejects": [row.model_dump(mode="json") for row in rejects]}
    emit(payload, as_json, table)

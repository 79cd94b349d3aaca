"""Generate samples for a prompt file into a JSONL file: the `tessy generate` job.

Appends one line per finished sample and flushes it, so a crash loses only samples in flight; a
rerun with the same output file skips every sample already written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tessy_core.config import GenerationConfig, Mode
from tessy_core.engine.factory import open_decoder
from tessy_core.engine.records import SampleRequest, SampleResult
from tessy_core.identity import sample_id
from tessy_core.engine.runner import RunSummary, run_samples
from tessy_core.files import resume_jsonl


@dataclass
class PromptFileReport:
    read: int = 0
    rejected: list[dict] = field(default_factory=list)  # {line, reason}


def read_sample_requests(
    path: Path, *, config_hash: str, mode: Mode, samples_per_prompt: int, limit: int | None, report: PromptFileReport
) -> list[SampleRequest]:
    """Requests for the prompts of a JSONL/Parquet file in any shape the catalog ingests."""
    from tessy_core.catalog.files import iter_raw_rows
    from tessy_core.catalog.formats import RowRejected, map_row

    requests: list[SampleRequest] = []
    for row in iter_raw_rows(path):
        if limit is not None and report.read - len(report.rejected) >= limit:
            break
        report.read += 1
        try:
            if isinstance(row.parsed, RowRejected):
                raise row.parsed
            prompt = map_row(row.parsed, source=path.name)
        except RowRejected as rejected:
            report.rejected.append({"line": row.line_no, "reason": str(rejected)})
            continue
        for index in range(samples_per_prompt):
            requests.append(
                SampleRequest(
                    sample_id=sample_id(prompt.prompt_id, index, mode.value, config_hash),
                    prompt_id=prompt.prompt_id,
                    problem=prompt.statement,
                    sample_index=index,
                )
            )
    return requests


async def generate_jsonl(
    config: GenerationConfig,
    prompts_path: Path,
    out_path: Path,
    *,
    mode: Mode | None = None,
    samples_per_prompt: int = 1,
    limit: int | None = None,
    on_progress: Callable[[SampleResult, int], None] | None = None,
) -> dict:
    """Run the job; returns a summary dict (counts, per-model usage, wall seconds)."""
    mode = mode or config.engine.mode
    config = config.with_mode(mode)
    report = PromptFileReport()
    requests = read_sample_requests(
        prompts_path,
        config_hash=config.config_hash(),
        mode=mode,
        samples_per_prompt=samples_per_prompt,
        limit=limit,
        report=report,
    )
    done = {record["sample_id"] for record in resume_jsonl(out_path)}
    todo = [r for r in requests if r.sample_id not in done]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a") as out:

        def write(result: SampleResult) -> None:
            out.write(json.dumps(result.to_record(), ensure_ascii=False) + "\n")
            out.flush()
            if on_progress is not None:
                on_progress(result, len(todo))

        async with open_decoder(config) as decoder:
            summary: RunSummary = await run_samples(decoder, todo, concurrency=config.engine.concurrency, on_result=write)
    return {
        "mode": mode.value,
        "config_hash": config.config_hash(),
        "prompts_read": report.read,
        "prompts_rejected": report.rejected,
        "samples_requested": len(requests),
        "samples_already_done": len(requests) - len(todo),
        **summary.to_record(),
        "out": str(out_path),
    }


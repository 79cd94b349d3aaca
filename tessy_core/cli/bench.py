"""`tessy bench decode`: interleaved decoding vs teacher-only vs a stand-in for the published lock-step
schedule, with each server's own counters beside the engine's figures.
`tessy bench checkpoints`: what checkpointing running samples costs the engine."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Optional

import typer

from tessy_core.cli.output import console, emit, fail
from tessy_core.enums import ModelFamily

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)


@app.command()
def decode(
    prompts: Path = typer.Option(..., "--prompts", exists=True, dir_okay=False, help="JSONL or Parquet prompts"),
    config: Optional[Path] = typer.Option(
        None, "--config", exists=True, dir_okay=False,
        help="YAML with `generation:` (served models) and optionally `workers:` (servers to start for the bench)",
    ),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="teacher model folder (servers are started)"),
    student: Optional[Path] = typer.Option(None, "--student", help="student model folder"),
    teacher_predictor: Optional[Path] = typer.Option(None, "--teacher-predictor", help="learned predictor folder"),
    student_predictor: Optional[Path] = typer.Option(None, "--student-predictor", help="learned predictor folder"),
    teacher_family: ModelFamily = typer.Option(ModelFamily.harmony, "--teacher-family"),
    student_family: ModelFamily = typer.Option(ModelFamily.qwen3, "--student-family"),
    vllm_venv: Path = typer.Option(Path(".venvs/vllm"), "--vllm-venv", help="virtualenv with vLLM"),
    samples: int = typer.Option(32, "--samples", min=1, help="samples per mode (cycling over the prompts)"),
    concurrency: int = typer.Option(32, "--concurrency", min=1, help="samples in flight; the lock-step pool size"),
    modes: str = typer.Option(
        "tessy,teacher_only,lockstep_standin,tessy_fixed", "--modes",
        help="comma-separated: tessy, teacher_only, lockstep_standin, tessy_fixed, tessy_stream",
    ),
    lockstep_k: str = typer.Option(
        "10,5", "--lockstep-k", help="TEACHER,STUDENT: k (tokens per request) of lockstep_standin and tessy_fixed"
    ),
    server_counters: bool = typer.Option(
        True, "--server-counters/--no-server-counters", help="read each server's /metrics before and after each mode"
    ),
    repeats: int = typer.Option(
        1, "--repeats", min=1, help="rounds of every mode on the same servers (the median round is reported)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Run tessy, teacher_only and a lock-step fixed-k schedule stand-in on equal prompts; print the figures."""
    import yaml
    from pydantic import ValidationError

    from tessy_core.bench.decode import DecodeBenchSettings, config_from_paths, requests_for, run_decode_bench
    from tessy_core.config import GenerationConfig, Mode, load_yaml_model
    from tessy_core.jobs.generate_jsonl import PromptFileReport, read_sample_requests
    from tessy_core.workers import WorkerPool, WorkersConfig, WorkerStartError
    from tessy_core.workers.config import ServerSpec
    from tessy_core.workers.process import free_ports

    from_paths = [teacher, student, teacher_predictor, student_predictor]
    if config is not None and any(p is not None for p in from_paths):
        fail("give either --config or model/predictor folders, not both", as_json)
    if config is None and not all(p is not None for p in from_paths):
        fail("give --config, or all of --teacher --student --teacher-predictor --student-predictor", as_json)
    try:
        teacher_k, student_k = (int(x) for x in lockstep_k.split(","))
    except ValueError:
        fail(f"--lockstep-k: two comma-separated integers expected (teacher,student), got {lockstep_k!r}", as_json)
        return
    try:
        settings = DecodeBenchSettings(
            modes=tuple(m.strip() for m in modes.split(",") if m.strip()), concurrency=concurrency,
            lockstep_teacher_k=teacher_k, lockstep_student_k=student_k, server_counters=server_counters,
            repeats=repeats,
        )
    except ValidationError as error:
        fail(f"invalid --modes or --lockstep-k: {error}", as_json)
        return
    report = PromptFileReport()
    rows = read_sample_requests(prompts, config_hash="bench", mode=Mode.tessy, samples_per_prompt=1, limit=None, report=report)
    if not rows:
        fail(f"{prompts}: no usable prompts ({len(report.rejected)} rejected)", as_json, rejected=report.rejected[:10])
    requests = requests_for([(r.prompt_id, r.problem) for r in rows], samples)

    workers: WorkersConfig | None = None
    try:
        if config is not None:
            data = yaml.safe_load(config.read_text()) or {}
            generation = GenerationConfig.model_validate(data.get("generation", data))
            if "workers" in data:
                workers = load_yaml_model(WorkersConfig, config, section="workers")
        else:
            state_dir = Path(tempfile.mkdtemp(prefix="tessy-bench-workers-"))
            ports = free_ports(2)
            workers = WorkersConfig(
                servers=[
                    ServerSpec(name="teacher", model_path=str(teacher), port=ports[0], venv=vllm_venv),
                    ServerSpec(name="student", model_path=str(student), port=ports[1], venv=vllm_venv),
                ],
                state_dir=state_dir,
            )
            generation = config_from_paths(
                teacher=str(teacher), student=str(student),
                teacher_predictor=str(teacher_predictor), student_predictor=str(student_predictor),
                endpoints={s.name: [s.openai_base_url] for s in workers.servers},
                teacher_family=teacher_family, student_family=student_family,
            )
    except (ValueError, ValidationError, OSError) as error:
        fail(f"invalid bench configuration: {error}", as_json)
        return

    def on_mode(mode: str, figures: dict, repeat: int) -> None:
        served = figures.get("server_tokens_per_kept_token")
        console.print(
            (f"round {repeat + 1}/{repeats} " if repeats > 1 else "")
            + f"[bold]{mode}[/]: {figures['wall_s']} s, {figures['output_tokens']} output tokens, "
            f"{figures['requests']} requests, {figures['tokens_discarded']} thrown away, "
            f"{figures['samples_ok']} ok / {figures['samples_failed']} failed"
            + (f", servers decoded {served} tokens per kept token" if served is not None else "")
        )

    try:
        if workers is not None:
            console.print(f"starting {len(workers.servers)} vLLM server(s)...")
            with WorkerPool(workers):
                result = asyncio.run(run_decode_bench(generation, requests, settings, on_mode))
        else:
            result = asyncio.run(run_decode_bench(generation, requests, settings, on_mode))
    except WorkerStartError as error:
        fail(f"servers failed to start: {error}", as_json, failures=error.failures)
        return
    result["prompts_rejected"] = len(report.rejected)
    emit(result, as_json, human=_human(result))


@app.command("predictor")
def predictor_bench(
    role: str = typer.Option(..., "--role", help="teacher or student: which boundary direction is scored"),
    predictor: Optional[Path] = typer.Option(None, "--predictor", file_okay=False, help="predictor folder"),
    data: Optional[Path] = typer.Option(None, "--data", dir_okay=False, help="held-out JSONL {text, style_spans}"),
    world: Optional[Path] = typer.Option(
        None, "--world", file_okay=False, help="a built small world: its predictor and held-out traces (default world)"
    ),
    limit: int = typer.Option(300, "--limit", min=1, help="held-out texts to read"),
    join: int = typer.Option(1, "--join", min=1, help="glue N texts into one (traces longer than the window)"),
    concurrency: int = typer.Option(32, "--concurrency", min=1, help="traces read at once"),
    every: int = typer.Option(1, "--words-per-call", min=1, help="1: a streamed span's calls; ~8: one call per span"),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads (both variants)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """A learned predictor reading traces word by word: full-window vs incremental CPU and boundary F1."""
    from tessy_core.bench.predictor import run_predictor_bench, world_heldout_texts
    from tessy_core.predictors.labels import read_labelled_jsonl
    from tessy_core.toyworld.build import WorldConfig, default_world_root

    if role not in ("teacher", "student"):
        fail(f"--role: teacher or student, got {role!r}", as_json)
    if data is not None and predictor is not None:
        texts = read_labelled_jsonl(data)
        folder = predictor
    elif data is None and predictor is None:
        root = world or default_world_root(WorldConfig())
        if not (root / "world.json").exists():
            fail(f"{root}: no built world (run `tessy toyworld build`)", as_json)
        texts, folder = world_heldout_texts(root, role), root / "predictors" / role
    else:
        fail("give --predictor and --data together, or neither (a world's own)", as_json)
        return
    result = run_predictor_bench(
        folder, texts[: limit * join], role, concurrency=concurrency, join=join, every=every, threads=threads
    )
    human = "\n".join(
        f"{name:<12} {v['predictor_cpu_s_per_1k_tokens']} predictor CPU s / 1K tokens, {v['tokens_through_the_model']} "
        f"tokens through the model, boundary F1 {v['boundary_f1']}"
        for name, v in result["variants"].items()
    ) + (f"\nfull-window / incremental CPU {result['cpu_ratio_full_vs_incremental']} (target >= 5); "
         f"F1 difference {result['boundary_f1_difference']} (target within 0.01)")
    emit(result, as_json, human=human)


@app.command("gpu-projection")
def gpu_projection(
    world: Optional[Path] = typer.Option(
        None, "--world", file_okay=False, help="a built small world (default: the cached default world)"
    ),
    samples: int = typer.Option(64, "--samples", min=1),
    concurrency: int = typer.Option(64, "--concurrency", min=1, help="samples in flight (the lock-step pool size)"),
    modes: str = typer.Option("tessy,teacher_only,lockstep_standin", "--modes", help="also: tessy_stream, tessy_fixed"),
    lockstep_k: str = typer.Option("10,5", "--lockstep-k", help="TEACHER,STUDENT tokens per request of the stand-in"),
    thinking_tokens: float = typer.Option(14_600, "--thinking-tokens", min=64, help="mean thinking length per sample"),
    answer_tokens: str = typer.Option("1000,4000", "--answer-tokens", help="MIN,MAX answer length (drawn uniformly)"),
    prompts: int = typer.Option(80_000, "--project-prompts", min=1, help="build size the GPU-hours are projected for"),
    teacher_replicas: int = typer.Option(1, "--teacher-replicas", min=1, help="teacher replicas (4 GPUs each)"),
    student_replicas: int = typer.Option(1, "--student-replicas", min=1, help="student replicas"),
    student_tp: int = typer.Option(1, "--student-tp", min=1, help="GPUs per student replica (tensor parallel)"),
    api_servers: int = typer.Option(
        1, "--api-servers", min=1, help="API processes per replica (vllm serve --api-server-count)"
    ),
    build_processes: int = typer.Option(
        1, "--build-processes", min=1, help="build processes sharing the samples in flight (a Ray runner's shards)"
    ),
    client_request_ms: float = typer.Option(
        1.8, "--client-request-ms", min=0, help="CPU of a build process's event loop per request"
    ),
    predictor_reads: str = typer.Option(
        "world-trace", "--predictor-reads",
        help="world-trace: the predictors read from the start of the small-world trace they are in; "
             "whole: the whole stitched trace (out of the small world's predictors' training)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """PROJECTION from a latency model of GPU vLLM replicas (not a measurement): the real engine,
    predictors and schedules on a virtual clock; tessy vs teacher_only and vs the lock-step stand-in."""
    from pydantic import ValidationError

    from tessy_core.bench.gpu_projection import (
        TEACHER_GPU,
        ProjectionSettings,
        TraceProfile,
        run_projection,
        student_replica,
    )
    from tessy_core.toyworld.build import WorldConfig, default_world_root

    root = world or default_world_root(WorldConfig())
    if not (root / "world.json").exists():
        fail(f"{root}: no built world (run `tessy toyworld build`)", as_json)
    if predictor_reads not in ("world-trace", "whole"):
        fail(f"--predictor-reads: world-trace or whole, got {predictor_reads!r}", as_json)
    try:
        teacher_k, student_k = (int(x) for x in lockstep_k.split(","))
        answer_min, answer_max = (int(x) for x in answer_tokens.split(","))
        settings = ProjectionSettings(
            samples=samples, concurrency=concurrency, modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
            lockstep_teacher_k=teacher_k, lockstep_student_k=student_k, prompts_to_project=prompts,
            teacher_replicas=teacher_replicas, student_replicas=student_replicas,
            build_processes=build_processes, client_request_ms=client_request_ms,
            predictor_reads_world_traces=predictor_reads == "world-trace",
            teacher=TEACHER_GPU.model_copy(update={"api_servers": api_servers}),
            student=student_replica(student_tp).model_copy(update={"api_servers": api_servers}),
            profile=TraceProfile(thinking_tokens_mean=thinking_tokens, answer_tokens_min=answer_min,
                                 answer_tokens_max=answer_max),
        )
    except (ValueError, ValidationError) as error:
        fail(f"invalid settings: {error}", as_json)
        return

    def on_mode(mode: str, figures: dict) -> None:
        console.print(
            f"[bold]{mode}[/]: {figures['virtual_s']} s projected, {figures['output_tokens']} output tokens, "
            f"{figures['requests']} requests, {figures['samples_ok']} ok (simulated in {figures['simulation_cpu_s']} s of CPU)"
        )

    import torch

    # Virtual time does not depend on how fast the predictors compute; one thread keeps several
    # projections (or a projection beside other work) from fighting over the cores.
    torch.set_num_threads(1)
    result = run_projection(root, settings, on_mode)
    emit(result, as_json, human=_projection_human(result))


def _projection_human(result: dict) -> str:
    lines = ["PROJECTION from a latency model (docs/sizing.md), not a measurement"]
    for mode, f in result["modes"].items():
        projected = f.get("projected", {})
        lines.append(
            f"  {mode:<17} {f['s_per_1k_output_tokens']!s:>8} s per 1K output tokens, "
            f"{projected.get('gpu_hours', '-')} GPU-hours for {projected.get('prompts', '-')} prompts"
        )
        if "sample_time" in f:
            shares = ", ".join(f"{place} {share:.0%}" for place, share in f["sample_time"]["share"].items() if share)
            lines.append(f"  {'':<17} a sample's {f['sample_time']['seconds_per_sample']} s: {shares}")
    r = result["ratios"]
    lines.append(f"tessy / teacher_only {r['tessy_vs_teacher_only']} in time per output token (target <= 1.3), "
                 f"{r['tessy_vs_teacher_only_steady']} in the steady state, "
                 f"{r['tessy_vs_teacher_only_gpu_hours']} in GPU-hours; "
                 f"lockstep_standin / tessy {r['lockstep_vs_tessy']} (target >= 1.5)")
    return "\n".join(lines)


@app.command()
def checkpoints(
    samples: int = typer.Option(16, "--samples", min=1),
    concurrency: int = typer.Option(8, "--concurrency", min=1),
    words: int = typer.Option(200, "--words", min=1, help="thinking words per sample (~2 per step)"),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0, help="imitated server latency per request"),
    every: str = typer.Option("20,5,1", "--every", help="checkpoint_every settings, comma-separated"),
    repeats: int = typer.Option(3, "--repeats", min=1),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", file_okay=False, help="where checkpoints go (its disk)"),
    on_loop: bool = typer.Option(False, "--on-loop", help="write checkpoints on the event loop, for comparison"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Engine steps/s with checkpoints off and every N steps, on the same samples in one process."""
    from tessy_core.bench.checkpoints import run_checkpoint_bench

    try:
        settings = [int(x) for x in every.split(",") if x.strip()]
    except ValueError:
        fail(f"--every: comma-separated integers expected, got {every!r}", as_json)
        return
    if not settings or min(settings) < 1:
        fail(f"--every: positive integers expected, got {every!r}", as_json)
    figures = run_checkpoint_bench(
        samples=samples, concurrency=concurrency, words=words, latency_ms=latency_ms, every=settings,
        repeats=repeats, work_dir=work_dir, offload=not on_loop,
    )
    emit(figures, as_json, human=_checkpoints_human(figures))


def _checkpoints_human(figures: dict) -> str:
    where = "off the event loop" if figures["checkpoints_off_the_event_loop"] else "on the event loop"
    lines = [
        f"{figures['samples']} samples, {figures['concurrency']} at once, {figures['thinking_words']} words of "
        f"thinking, {figures['latency_ms']:g} ms per request (best of {figures['repeats']}), checkpoints {where}"
    ]
    for row in figures["rows"]:
        each = row["ms_per_checkpoint"] if row["ms_per_checkpoint"] is not None else "-"
        lines.append(
            f"  every {row['checkpoint_every']!s:>4}: {row['steps_per_s']:>8} steps/s "
            f"x{row['slowdown_vs_off']:<6} {row['checkpoints']:>5} checkpoints  {each} ms each"
        )
    return "\n".join(lines)


def _human(result: dict) -> str:
    lines = [
        f"{'mode':<17} {'wall s':>8} {'out tok':>8} {'requests':>9} {'srv req':>8} {'srv gen':>8} "
        f"{'srv/kept':>8} {'req/span':>8} {'ms/tok':>8}"
    ]
    for mode, f in result["modes"].items():
        servers = f.get("servers", {})
        lines.append(
            f"{mode:<17} {f['wall_s']:>8} {f['output_tokens']:>8} {f['requests']:>9} "
            f"{f.get('server_requests', '-')!s:>8} "
            f"{sum(s['generation_tokens'] for s in servers.values()) if servers else '-'!s:>8} "
            f"{f.get('server_tokens_per_kept_token', '-')!s:>8} {f.get('requests_per_span')!s:>8} "
            f"{f['ms_per_output_token']!s:>8}"
        )
    r, t = result["ratios"], result["ratios"]["targets"]
    lines.append(
        f"lockstep_standin / tessy {r['lockstep_vs_tessy']} (target >= {t['lockstep_vs_tessy_min']}); "
        f"servers' tokens per kept token {r['tessy_server_tokens_per_kept_token']} (target <= "
        f"{t['server_tokens_per_kept_token_max']}); requests per span {r['tessy_requests_per_span']} "
        f"(target <= {t['requests_per_span_max']}); engine vs server tokens, worst {r['accounting_error_max']} "
        f"(target <= {t['accounting_error_max']}); tessy / teacher_only {r['tessy_vs_teacher_only']} "
        f"(its target applies to the GPU projection, docs/sizing.md)"
    )
    repeats = result.get("repeats")
    if repeats:
        lines.insert(0, f"the median of {repeats['count']} rounds (round {repeats['median_round'] + 1}):")
        for name, values in repeats["ratios"].items():
            lines.append(f"{name} per round: {' / '.join(str(v) for v in values)} (median {repeats['medians'][name]})")
    return "\n".join(lines)


@app.command("cli")
def cli_startup(
    repeats: int = typer.Option(5, "--repeats", min=1, help="runs per command (the median is reported)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Wall and CPU time of everyday commands (help, datasets, export, ingest, sandbox run)."""
    from tessy_core.bench.cli_startup import run_cli_bench

    result = run_cli_bench(repeats)
    lines = [f"{'command':<28} {'wall s':>7} {'cpu s':>7} {'target':>7} {'x python':>9}"]
    for row in result["timings"]:
        target = "-" if row["target_s"] is None else f"{row['target_s']}"
        flag = "" if row["within_target"] in (None, True) else "  over target"
        bad = "" if row["exit_codes"] == [0] else f"  exit {row['exit_codes']}"
        lines.append(f"{row['command']:<28} {row['wall_s']:>7} {row['cpu_s']:>7} {target:>7} {row['x_python_startup']:>9}{flag}{bad}")
    lines.append(f"load average (1 min) before/after: {result['load_average_1m']}")
    emit({"ok": True, **result}, as_json, "\n".join(lines))

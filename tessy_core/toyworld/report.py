"""Measures the world's claim: the quality figures of `tessy toyworld report`.

On the world's fresh evaluation problems it generates one sample per problem in teacher_only,
student_only and tessy modes through the product's own engine, runs every answer against the
problem's hidden tests in the product's sandbox, and scores every thinking text under the student
(its mean per-token negative log-likelihood: how much the text reads like the student's own).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from pydantic import BaseModel, ConfigDict

from tessy_core.backends import build_backend
from tessy_core.chat import chat_format_for
from tessy_core.config import GenerationConfig, Mode
from tessy_core.engine.factory import open_decoder
from tessy_core.engine.records import SampleRequest, SampleResult
from tessy_core.engine.runner import run_samples
from tessy_core.toyworld.build import ROLES, World
from tessy_core.toyworld.problems import Problem
from tessy_core.verify import ExecutionLimits, Sandbox, verify_answer_async

REPORT_MODES = (Mode.teacher_only, Mode.student_only, Mode.tessy)


class Thresholds(BaseModel):
    """The claim, as issue 3 states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher_only_pass_min: float = 0.8
    student_only_pass_max: float = 0.5
    tessy_vs_teacher_min: float = 0.9
    style_gap_closed_min: float = 0.7
    predictor_f1_min: float = 0.9


class ModeFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: int
    ok: int
    passed: int
    pass_rate: float
    student_nll: float  # token-weighted mean NLL of the thinking text under the student
    teacher_token_share: float
    requests: int
    tokens_kept: int
    tokens_discarded: int
    wall_s: float
    failure_reasons: dict[str, int]


class WorldReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problems: int
    modes: dict[str, ModeFigures]
    tessy_vs_teacher_only: float
    style_gap_closed: float
    predictor_boundary_f1: dict[str, float]
    style_token_share: dict[str, float]
    checks: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


ProgressFn = Callable[[str, int, int], None]


async def measure_world(
    world: World,
    *,
    generation: GenerationConfig | None = None,
    limit: int | None = None,
    concurrency: int = 16,
    thresholds: Thresholds = Thresholds(),
    progress: ProgressFn | None = None,
) -> WorldReport:
    """Generate, verify and score the evaluation problems in every report mode."""
    problems = world.eval_problems()[:limit]
    generation = generation or world.generation_config(concurrency=concurrency)
    student_backend = build_backend(generation.student)
    student_chat = chat_format_for(generation.student)
    figures: dict[str, ModeFigures] = {}
    try:
        with Sandbox() as sandbox:
            for mode in REPORT_MODES:
                results, wall_s = await _generate(generation, mode, problems, concurrency, progress)
                figures[mode.value] = await _mode_figures(
                    results, wall_s, problems, sandbox, student_backend, student_chat
                )
    finally:
        await student_backend.aclose()

    teacher, student, tessy = (figures[m.value] for m in REPORT_MODES)
    gap = teacher.student_nll - student.student_nll
    style_gap_closed = (teacher.student_nll - tessy.student_nll) / gap if gap > 0 else 0.0
    ratio = tessy.pass_rate / teacher.pass_rate if teacher.pass_rate else 0.0
    manifest = world.manifest
    f1 = {role: float(manifest["predictor_training"][role]["boundary_f1"]) for role in ROLES}
    checks = {
        "teacher_only_pass_rate": teacher.pass_rate >= thresholds.teacher_only_pass_min,
        "student_only_pass_rate": student.pass_rate <= thresholds.student_only_pass_max,
        "tessy_vs_teacher_only": ratio >= thresholds.tessy_vs_teacher_min,
        "style_gap_closed": style_gap_closed >= thresholds.style_gap_closed_min,
        **{f"{role}_predictor_f1": value >= thresholds.predictor_f1_min for role, value in f1.items()},
    }
    return WorldReport(
        problems=len(problems),
        modes=figures,
        tessy_vs_teacher_only=round(ratio, 4),
        style_gap_closed=round(style_gap_closed, 4),
        predictor_boundary_f1=f1,
        style_token_share=manifest["style_token_share"],
        checks=checks,
    )


async def _generate(
    generation: GenerationConfig, mode: Mode, problems: list[Problem], concurrency: int, progress: ProgressFn | None
) -> tuple[list[SampleResult], float]:
    requests = [
        SampleRequest(sample_id=f"{mode.value}/{p.source_id}", prompt_id=p.source_id, problem=p.statement)
        for p in problems
    ]
    results: list[SampleResult] = []

    def collect(result: SampleResult) -> None:
        results.append(result)
        if progress is not None:
            progress(mode.value, len(results), len(requests))

    async with open_decoder(generation, mode) as decoder:
        summary = await run_samples(decoder, requests, concurrency=concurrency, on_result=collect)
    order = {request.sample_id: index for index, request in enumerate(requests)}
    return sorted(results, key=lambda r: order[r.sample_id]), summary.wall_s


async def _mode_figures(results, wall_s, problems, sandbox, student_backend, student_chat) -> ModeFigures:
    by_id = {p.source_id: p for p in problems}

    async def judge(result: SampleResult) -> bool:
        if not result.ok:
            return False
        problem = by_id[result.prompt_id]
        tests = [{"kind": "stdio", "input": t.input, "output": t.output, "hidden": True} for t in problem.hidden_tests]
        verdict = await verify_answer_async(sandbox, result.answer, tests, ExecutionLimits())
        return verdict.accepted

    passed = await asyncio.gather(*(judge(r) for r in results))
    ok = [r for r in results if r.ok]
    scores = [
        await student_backend.score(student_chat.thinking_prompt(r.problem), r.thinking) for r in ok if r.thinking
    ]
    token_count = sum(len(s.logprobs) for s in scores)
    nll = -sum(sum(s.logprobs) for s in scores) / token_count if token_count else float("nan")
    shares = [r.teacher_token_share for r in ok]
    failures: dict[str, int] = {}
    for r in results:
        if not r.ok:
            code = (r.failure_reason or "unknown").split(":", 1)[0]
            failures[code] = failures.get(code, 0) + 1
    usage = [u for r in results for u in r.usage.values()]
    return ModeFigures(
        samples=len(results),
        ok=len(ok),
        passed=sum(passed),
        pass_rate=round(sum(passed) / len(results), 4) if results else 0.0,
        student_nll=round(nll, 4),
        teacher_token_share=round(sum(shares) / len(shares), 4) if shares else 0.0,
        requests=sum(u.requests for u in usage),
        tokens_kept=sum(u.tokens_kept for u in usage),
        tokens_discarded=sum(u.tokens_discarded for u in usage),
        wall_s=round(wall_s, 2),
        failure_reasons=failures,
    )

"""Throughput of the sandbox against the naive baseline: one fresh interpreter per test."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tessy_core.verify.compare import outputs_match
from tessy_core.verify.config import ExecutionLimits, SandboxConfig
from tessy_core.verify.extract import Program
from tessy_core.verify.results import Verdict
from tessy_core.verify.sandbox import Sandbox
from tessy_core.verify.schema import StdioTest

BASELINE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BenchCase:
    name: str
    source: str
    test: StdioTest
    verdict: Verdict


BENCH_CASES: tuple[BenchCase, ...] = (
    BenchCase("sum_two", "a, b = map(int, input().split())\nprint(a + b)\n",
              StdioTest(input="3 4\n", output="7\n"), Verdict.ACCEPTED),
    BenchCase("wrong", "a, b = map(int, input().split())\nprint(a - b)\n",
              StdioTest(input="3 4\n", output="7\n"), Verdict.WRONG_ANSWER),
    BenchCase("runtime_error", "xs = list(map(int, input().split()))\nprint(xs[5])\n",
              StdioTest(input="1 2 3\n", output="0\n"), Verdict.RUNTIME_ERROR),
    BenchCase("tiny_loop", "total = 0\nfor i in range(20000):\n    total += i * i\nprint(total)\n",
              StdioTest(input="", output=f"{sum(i * i for i in range(20000))}\n"), Verdict.ACCEPTED),
    BenchCase("read_stdin", "import sys\nn, *xs = map(int, sys.stdin.read().split())\nprint(max(xs[:n]))\n",
              StdioTest(input="5\n" + "\n".join(str(x) for x in (4, 9, 1, 7, 3)) + "\n", output="9\n"),
              Verdict.ACCEPTED),
)


class BenchReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executions: int
    workers: int
    executions_per_s: float
    baseline_executions_per_s: float
    speedup: float
    # CPU (all processes: host, zygotes, programs / interpreters) per execution: unlike the rates,
    # hardly moved by other load on the machine. Sandbox figure includes start-up and warm-up.
    cpu_ms_per_execution: float
    baseline_cpu_ms_per_execution: float
    sandbox_startup_s: float
    # 1-minute load average before and after: the rates depend on it, their ratio much less.
    load_average: tuple[float, float]
    verdict_counts: dict[str, int]
    wrong_verdicts: int
    isolation: dict[str, bool]
    config: dict[str, Any]


def _cases(n: int) -> list[BenchCase]:
    return [BENCH_CASES[i % len(BENCH_CASES)] for i in range(n)]


async def _run_sandbox(sandbox: Sandbox, cases: list[BenchCase]) -> list[Verdict]:
    limits = ExecutionLimits(time_limit_s=2.0)
    results = await asyncio.gather(*(
        sandbox.run_tests(Program(source=case.source), [case.test], limits) for case in cases))
    return [result.verdict for result in results]


def _baseline_once(script: Path, case: BenchCase) -> Verdict:
    completed = subprocess.run([sys.executable, str(script)], input=case.test.input, capture_output=True,
                               text=True, timeout=BASELINE_TIMEOUT_S, check=False)
    if completed.returncode != 0:
        return Verdict.RUNTIME_ERROR
    return Verdict.ACCEPTED if outputs_match(completed.stdout, case.test.output) else Verdict.WRONG_ANSWER


def _cpu_s() -> float:
    """CPU seconds of this process and of every descendant it has reaped."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_baseline(cases: list[BenchCase], workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="tessy-bench-") as directory:
        scripts = {case.name: Path(directory) / f"{case.name}.py" for case in BENCH_CASES}
        for case in BENCH_CASES:
            scripts[case.name].write_text(case.source)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda case: _baseline_once(scripts[case.name], case), cases))
        return time.perf_counter() - started


def run_benchmark(n: int = 400, config: SandboxConfig | None = None) -> BenchReport:
    """Run `n` executions of the program mix through the sandbox, then through the baseline.

    Both sides use the same parallelism (one worker per core); sandbox start-up is reported apart.
    """
    config = config or SandboxConfig()
    cases = _cases(n)
    load_before = os.getloadavg()[0]
    cpu_started = _cpu_s()
    started = time.perf_counter()
    with Sandbox(config) as sandbox:
        startup_s = time.perf_counter() - started
        asyncio.run(_run_sandbox(sandbox, cases[: len(BENCH_CASES)]))  # warm-up
        started = time.perf_counter()
        verdicts = asyncio.run(_run_sandbox(sandbox, cases))
        sandbox_s = time.perf_counter() - started
        isolation = sandbox.isolation.model_dump()
    sandbox_cpu_s = _cpu_s() - cpu_started  # zygotes are reaped on close, so their CPU is in
    workers = config.worker_count()
    cpu_started = _cpu_s()
    baseline_s = _run_baseline(cases, workers)
    baseline_cpu_s = _cpu_s() - cpu_started
    rate, baseline_rate = n / sandbox_s, n / baseline_s
    return BenchReport(
        executions=n, workers=workers, executions_per_s=round(rate, 1),
        baseline_executions_per_s=round(baseline_rate, 1), speedup=round(rate / baseline_rate, 2),
        cpu_ms_per_execution=round(sandbox_cpu_s * 1000 / n, 3),
        baseline_cpu_ms_per_execution=round(baseline_cpu_s * 1000 / n, 3),
        sandbox_startup_s=round(startup_s, 3), load_average=(round(load_before, 2), round(os.getloadavg()[0], 2)),
        verdict_counts=dict(Counter(v.value for v in verdicts)),
        wrong_verdicts=sum(v is not case.verdict for v, case in zip(verdicts, cases)),
        isolation=isolation, config=config.model_dump(mode="json"))

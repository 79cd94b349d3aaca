"""How long the everyday `tessy` commands take, start to exit, as a person or a script sees them.

Each command runs as its own process against a small fixture made here (a 20-row prompts file, a
published 20-row version, a one-line program), `repeats` times; the figure is the median wall time
and the CPU time of the process (user + sys, less sensitive to a busy machine). The baseline is a
bare `python -c pass` run in the same loop, so the ratio says what tessy adds to starting Python.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Targets from the issue that made the CLI lazy (idle 2-core machine, wall seconds).
TARGETS_S = {"sandbox run": 2.0}
DEFAULT_TARGET_S = 1.5


@dataclass
class CommandTiming:
    command: str
    wall_s: float
    cpu_s: float
    target_s: float | None
    exit_codes: list[int]

    @property
    def within_target(self) -> bool | None:
        return None if self.target_s is None else self.wall_s <= self.target_s


def _fixture(root: Path) -> dict[str, Path]:
    from tessy_core.publish import BuildInfo, Publisher

    import polars as pl

    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(
        json.dumps({"statement": f"Read n and print n + {i}.", "tests": [{"kind": "stdio", "input": "1\n", "output": f"{1 + i}\n"}]}) + "\n"
        for i in range(20)
    ))
    rows = pl.DataFrame([
        {
            "sample_id": f"s{i:04d}", "prompt_id": f"p{i}", "mode": "tessy",
            "messages": [{"role": "user", "content": f"Problem {i}"},
                         {"role": "assistant", "content": f"<think>\nOkay.\n</think>\n\nprint({i})"}],
        }
        for i in range(20)
    ])
    datasets = root / "datasets"
    Publisher(str(datasets)).publish(
        "bench-cli", {"train": rows},
        BuildInfo(build_id="bench-cli", build_config={}, models={}, predictors={}, validation={}, figures={}),
    )
    program = root / "solution.py"
    program.write_text("print(int(input()) + 1)\n")
    tests = root / "tests.json"
    tests.write_text(json.dumps([{"kind": "stdio", "input": "1\n", "output": "2\n"}]))
    return {"prompts": prompts, "datasets": datasets, "program": program, "tests": tests}


def _commands(tessy: list[str], files: dict[str, Path], root: Path) -> dict[str, list[str]]:
    base = ["--base", str(files["datasets"])]
    return {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "--help": [*tessy, "--help"],
        "datasets list": [*tessy, "datasets", "list", *base, "--json"],
        "datasets show": [*tessy, "datasets", "show", "bench-cli@v1", *base, "--json"],
        "export": [*tessy, "export", "bench-cli@v1", "--out", str(root / "export.jsonl"), *base, "--json"],
        "catalog ingest": [*tessy, "catalog", "ingest", str(files["prompts"]), "--source", "bench",
                           "--catalog", str(root / "catalog.duckdb"), "--json"],
        "sandbox run": [*tessy, "sandbox", "run", "--code", str(files["program"]), "--tests", str(files["tests"]), "--json"],
    }


def _time_once(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def run_cli_bench(repeats: int = 5) -> dict[str, object]:
    """Times every command; the result is JSON-ready (`timings`, `load_average`, `repeats`)."""
    script = Path(sys.executable).with_name("tessy")  # the entry point people run
    if not script.exists():
        raise FileNotFoundError(f"{script} not found: install tessy into this environment first")
    tessy = [str(script)]
    timings: list[CommandTiming] = []
    with tempfile.TemporaryDirectory(prefix="tessy-bench-cli-") as tmp:
        root = Path(tmp)
        files = _fixture(root)
        load_before = os.getloadavg()[0]
        for name, argv in _commands(tessy, files, root).items():
            runs = [_time_once(argv, root) for _ in range(repeats)]
            baseline = name.endswith("(baseline)")
            timings.append(CommandTiming(
                command=name,
                wall_s=round(statistics.median(r[0] for r in runs), 3),
                cpu_s=round(statistics.median(r[1] for r in runs), 3),
                target_s=None if baseline else TARGETS_S.get(name, DEFAULT_TARGET_S),
                exit_codes=sorted({r[2] for r in runs}),
            ))
    base_wall = timings[0].wall_s or 1e-9
    return {
        "repeats": repeats,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "timings": [
            {**asdict(t), "within_target": t.within_target, "x_python_startup": round(t.wall_s / base_wall, 1)}
            for t in timings
        ],
    }

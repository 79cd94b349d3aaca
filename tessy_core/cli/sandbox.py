"""`tessy sandbox ...`: run programs against tests in the isolated sandbox, and measure it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from tessy_core.cli.output import console, emit, fail

if TYPE_CHECKING:
    from tessy_core.verify import SandboxConfig, VerificationResult

app = typer.Typer(help="Run untrusted programs against tests in the isolated sandbox.", no_args_is_help=True)

CPP_SUFFIXES = {".cpp", ".cc", ".cxx", ".c++"}
JsonFlag = typer.Option(False, "--json", help="Print one JSON object on stdout.")
ConfigOption = typer.Option(None, "--config", help="Sandbox settings (YAML).", exists=True, dir_okay=False)


def _load_config(path: Path | None, workers: int | None = None) -> SandboxConfig:
    from tessy_core.verify import SandboxConfig

    config = SandboxConfig.from_yaml(path) if path is not None else SandboxConfig()
    return config.model_copy(update={"workers": workers}) if workers is not None else config


def _load_tests(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """The tests and the limits-bearing object they came with. Accepted: a list of tests
    (`{input, output}` or the catalog schema), an object with a `tests` list (a catalog prompt row),
    or a raw dataset row the catalog can ingest (APPS/TACO, CodeContests, open-r1, LiveCodeBench)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict) and "tests" in data:
        if not isinstance(data["tests"], list):
            raise ValueError(f"{path}: 'tests' must be a JSON list of tests")
        return data["tests"], data
    if isinstance(data, dict):
        from tessy_core.catalog.formats import RowRejected, map_row

        try:
            prompt = map_row(data, source=str(path))
        except RowRejected as exc:
            raise ValueError(f"{path}: {exc}") from None
        if prompt.tests:
            return [test.model_dump() for test in prompt.tests], prompt.model_dump()
    raise ValueError(f"{path}: expected a JSON list of tests, an object with a 'tests' list, "
                     "or a dataset row with tests (APPS/TACO, CodeContests, open-r1, LiveCodeBench)")


def _results_table(result: VerificationResult) -> Table:
    table = Table(title=f"{result.verdict.value}: {result.passed}/{result.total} passed")
    for column in ("test", "verdict", "cpu s", "message"):
        table.add_column(column)
    for test in result.tests:
        table.add_row(str(test.index), test.verdict.value, f"{test.cpu_s:.3f}", test.message or "")
    return table


@app.command()
def run(
    code: Path = typer.Option(..., "--code", help="Program source file.", exists=True, dir_okay=False),
    tests: Path = typer.Option(..., "--tests", help="JSON tests file.", exists=True, dir_okay=False),
    time_limit: float | None = typer.Option(None, "--time-limit", help="CPU seconds per test."),
    memory_mb: int | None = typer.Option(None, "--memory-mb", help="Memory limit in MB."),
    language: str | None = typer.Option(None, "--language", help="python or cpp (default: from the file suffix)."),
    config_path: Path | None = ConfigOption,
    as_json: bool = JsonFlag,
) -> None:
    """Run one program against its tests and print the verdict with per-test details."""
    from tessy_core.verify import ExecutionLimits, Program, Sandbox, SandboxError

    try:
        test_list, prompt = _load_tests(tests)
        limits = ExecutionLimits.from_prompt({
            **prompt,
            **({"time_limit_s": time_limit} if time_limit is not None else {}),
            **({"memory_limit_mb": memory_mb} if memory_mb is not None else {}),
        })
        program = Program(language=language or ("cpp" if code.suffix in CPP_SUFFIXES else "python"),
                          source=code.read_text())
        config = _load_config(config_path)
        # One program is judged on one worker, test after test: more would only cost start-up.
        with Sandbox(config if config.workers is not None else config.model_copy(update={"workers": 1})) as sandbox:
            result = sandbox.run_tests_sync(program, test_list, limits, source=prompt.get("source"))
    except (SandboxError, ValueError) as exc:
        fail(str(exc), as_json)
        return
    if not as_json:
        console.print(_results_table(result))
    emit({"ok": True, **result.model_dump(mode="json")}, as_json,
         human=f"{result.verdict.value} ({result.passed}/{result.total})")


@app.command()
def bench(
    n: int = typer.Option(400, "--n", min=1, help="Executions per side."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Default: usable CPU cores."),
    config_path: Path | None = ConfigOption,
    as_json: bool = JsonFlag,
) -> None:
    """Executions per second of the sandbox vs one fresh interpreter per test (same parallelism)."""
    from tessy_core.verify import SandboxError
    from tessy_core.verify.bench import run_benchmark

    try:
        with console.status("running the sandbox and the baseline..."):
            report = run_benchmark(n, _load_config(config_path, workers))
    except SandboxError as exc:
        fail(str(exc), as_json)
        return
    emit({"ok": True, **report.model_dump()}, as_json, human=(
        f"sandbox {report.executions_per_s:.0f} exec/s, baseline {report.baseline_executions_per_s:.0f} exec/s, "
        f"speedup {report.speedup:.2f}x ({report.executions} executions, {report.workers} workers, "
        f"{report.wrong_verdicts} unexpected verdicts, load average {report.load_average[0]:.1f})"))

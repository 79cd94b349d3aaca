"""Verdict of one execution from the facts the zygote measured."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessy_core.verify.errors import SandboxError
from tessy_core.verify.results import Verdict

# A program killed by a signal whose peak memory reached this share of its limit ran out of memory.
MEMORY_PEAK_SHARE = 0.9
_OUT_OF_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory")


@dataclass(frozen=True)
class Failure:
    verdict: Verdict
    message: str


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _ran_out_of_memory(raw: Mapping[str, Any], memory_limit_mb: int) -> bool:
    if raw["status"].get("error") == "MemoryError":
        return True
    if raw["max_rss_kb"] >= memory_limit_mb * 1024 * MEMORY_PEAK_SHARE:
        return True
    last_lines = raw["stderr"].strip().splitlines()[-3:]
    return any(marker in line for line in last_lines for marker in _OUT_OF_MEMORY_MARKERS)


def classify_execution(raw: Mapping[str, Any], time_limit_s: float, memory_limit_mb: int) -> Failure | None:
    """Why the execution failed, or None when it ran to a clean exit and its output decides."""
    status = raw["status"]
    if status.get("phase") == "setup":
        raise SandboxError(f"the sandbox could not prepare the program: {status.get('error')}")
    if status.get("phase") == "compile":
        return Failure(Verdict.COMPILE_ERROR, _last_line(raw["stderr"]) or "does not compile")
    if raw["timed_out"]:
        return Failure(Verdict.TIME_LIMIT, f"wall time over {raw['wall_s']:.2f}s")
    if raw["output_limit"]:
        return Failure(Verdict.WRONG_ANSWER, f"output limit exceeded ({raw['stdout_bytes']} bytes or more)")
    exit_code = raw["exit_code"]
    if exit_code < 0:
        number = -exit_code
        if number == signal.SIGXCPU or raw["cpu_s"] >= time_limit_s:
            return Failure(Verdict.TIME_LIMIT, f"CPU time {raw['cpu_s']:.2f}s over {time_limit_s:g}s")
        if _ran_out_of_memory(raw, memory_limit_mb):
            return Failure(Verdict.MEMORY_LIMIT, f"killed by {_signal_name(number)} at the memory limit")
        return Failure(Verdict.RUNTIME_ERROR, f"killed by {_signal_name(number)}")
    if raw["cpu_s"] > time_limit_s:
        return Failure(Verdict.TIME_LIMIT, f"CPU time {raw['cpu_s']:.2f}s over {time_limit_s:g}s")
    if exit_code != 0:
        if _ran_out_of_memory(raw, memory_limit_mb):
            return Failure(Verdict.MEMORY_LIMIT, f"out of memory ({memory_limit_mb} MB limit)")
        error = status.get("error")
        return Failure(Verdict.RUNTIME_ERROR, f"{error} (exit code {exit_code})" if error else f"exit code {exit_code}")
    return None

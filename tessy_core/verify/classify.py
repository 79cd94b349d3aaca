"""Verdict of one execution from facts observed outside the program's process tree.

Trusted facts: the wait status of the program process (PID 1 of its namespace, reaped by the
zygote), the tree's CPU time, OOM kills and fork failures (its cgroup), the wall clock, why the
zygote killed it, the setup report (written before the program got control), and its stdout.
Everything else the program can write (stderr, the status line of the Python harness) is only
ever used to choose between failure verdicts or to word a message: it can make the program's own
verdict worse, never better, and never turn it into a sandbox error.

The order is fixed, so a verdict never depends on load or on which limit the kernel noticed first:
    setup failure -> sandbox error; tree CPU >= limit or wall limit -> time_limit; an OOM kill in
    the tree -> memory_limit; output limit -> wrong_answer; killed by a signal -> runtime_error;
    non-zero exit -> runtime_error (compile_error for a Python syntax error); else the output decides.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessy_core.verify.errors import SandboxError
from tessy_core.verify.results import Verdict

_STATUS_LINE_LIMIT = 1 << 20
_STATUS_LINES = 64
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")
_PHASES = ("done", "error", "compile")


@dataclass(frozen=True)
class Failure:
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class Status:
    """The harness's status line, parsed defensively (the program can write anything there)."""

    phase: str | None = None
    error: str | None = None
    result_json: str | None = None


def parse_status(raw: bytes) -> Status:
    """The program process's own status line (the last one it wrote, `"pid": 1`); else an empty one.

    Lines written by processes the program forked (they run the same harness) are skipped. Bounded
    and total: no input (oversized, deeply nested, huge integers, wrong types, invalid UTF-8) raises.
    """
    for line in raw.rstrip(b"\n").split(b"\n")[-_STATUS_LINES:][::-1]:
        if not line or len(line) > _STATUS_LINE_LIMIT:
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError, MemoryError):
            continue
        if not isinstance(value, dict) or value.get("pid") != 1 or isinstance(value.get("pid"), bool):
            continue
        phase, error, result = value.get("phase"), value.get("error"), value.get("result_json")
        return Status(
            phase=phase if isinstance(phase, str) and phase in _PHASES else None,
            error=error if isinstance(error, str) and _NAME.fullmatch(error) else None,
            result_json=result if isinstance(result, str) else None,
        )
    return Status()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else ""


def classify_execution(raw: Mapping[str, Any], status: Status, time_limit_s: float,
                       memory_limit_mb: int) -> Failure | None:
    """Why the execution failed, or None when it ran to a clean exit and its output decides."""
    if not raw["ready"]:
        reason = raw.get("setup_error") or (
            f"the program process died before it was set up (wait status {raw.get('wait_status')}, "
            f"OOM kills {raw.get('oom_kills')}, stopped for {raw.get('killed_for')})")
        raise SandboxError(f"the sandbox could not prepare the program: {reason}")
    cpu_s = raw["cpu_s"]
    if raw["killed_for"] == "cpu" or cpu_s >= time_limit_s:
        return Failure(Verdict.TIME_LIMIT, f"CPU time of the process tree {cpu_s:.2f}s, limit {time_limit_s:g}s")
    if raw["killed_for"] == "wall":
        return Failure(Verdict.TIME_LIMIT, f"wall time over {raw['wall_s']:.2f}s (CPU {cpu_s:.2f}s)")
    if raw["oom_kills"] > 0:
        return Failure(Verdict.MEMORY_LIMIT, f"out of memory: the process tree reached {memory_limit_mb} MB")
    if raw["output_limit"]:
        return Failure(Verdict.WRONG_ANSWER, f"output limit exceeded ({raw['stdout_bytes']} bytes or more)")
    if raw["killed_for"] is not None:
        raise SandboxError(f"the execution was stopped by the sandbox ({raw['killed_for']})")
    if raw["signal"] is not None:
        return Failure(Verdict.RUNTIME_ERROR, f"killed by {_signal_name(raw['signal'])}")
    exit_code = raw["exit_code"]
    if exit_code != 0:
        if status.phase == "compile":
            return Failure(Verdict.COMPILE_ERROR, _last_line(raw["stderr"]) or "does not compile")
        detail = f"{status.error} (exit code {exit_code})" if status.error else f"exit code {exit_code}"
        if raw["pids_max"] > 0:
            detail += "; the process limit was reached"
        return Failure(Verdict.RUNTIME_ERROR, detail)
    return None

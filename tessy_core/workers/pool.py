"""`WorkerPool`: start, watch and stop the configured vLLM servers of this machine."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict

from tessy_core.workers.config import ServerSpec, WorkersConfig
from tessy_core.workers.process import (
    WorkerRecord,
    group_members,
    launch,
    leader_is_alive,
    log_tail,
    port_is_free,
    stop_group,
)

INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "vllm" / "install-venv.sh"
_HEALTH_TIMEOUT_S = 2.0
_HEALTH_POLL_S = 0.5


class WorkerStartError(RuntimeError):
    """Some servers did not come up; `failures` maps each one's name to why (with its log tail)."""

    def __init__(self, failures: dict[str, str]):
        super().__init__("; ".join(f"{name}: {why}" for name, why in failures.items()))
        self.failures = failures


class WorkerStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    state: Literal["healthy", "unhealthy", "stopped"]
    url: str
    openai_base_url: str
    served_model_name: str
    pid: int | None
    alive: bool
    healthy: bool
    uptime_s: float | None
    log_path: Path


class StopResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pid: int | None
    outcome: str


class WorkerPool:
    """The servers of a `WorkersConfig`. Use as a context manager to stop them on exit."""

    def __init__(self, config: WorkersConfig):
        self.config = config
        # Servers launched by this object, kept so their exit status is collected (no zombies).
        self._children: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "WorkerPool":
        try:
            self.start(wait=True)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, *, wait: bool = True, timeout_s: float | None = None) -> list[WorkerStatus]:
        """Launch every server that is not running; with `wait`, until all answer `/health`.

        Already running servers are left alone, so `start` can be repeated after a partial failure.
        Raises `WorkerStartError` naming the servers that died or timed out (those are stopped).
        """
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        for venv, flavor in {(s.venv, s.flavor) for s in self.config.servers}:
            ensure_vllm_venv(venv, flavor)
        for spec in self.config.servers:
            if self._running_record(spec) is None:
                self._launch(spec)
        if wait:
            self._wait_until_healthy(timeout_s if timeout_s is not None else self.config.startup_timeout_s)
        return self.status()

    def status(self) -> list[WorkerStatus]:
        return [self._status(spec) for spec in self.config.servers]

    def stop(self) -> list[StopResult]:
        """Stop every server that has a state record, and remove the records."""
        results = []
        for spec in self.config.servers:
            record = self._load_record(spec)
            if record is None:
                results.append(StopResult(name=spec.name, pid=None, outcome="not running"))
                continue
            outcome = stop_group(record, self.config.stop_grace_s)
            self._reap(spec.name)
            self._state_path(spec).unlink(missing_ok=True)
            results.append(StopResult(name=spec.name, pid=record.pid, outcome=outcome))
        return results

    def _launch(self, spec: ServerSpec) -> None:
        if not port_is_free(spec.host, spec.port):
            raise WorkerStartError({spec.name: f"port {spec.host}:{spec.port} is already in use"})
        process, record = launch(spec, self._log_path(spec), self.config.cpu_cores(spec))
        self._children[spec.name] = process
        record.save(self._state_path(spec))

    def _wait_until_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.config.servers)
        failures: dict[str, str] = {}
        while pending:
            still_pending = []
            for spec in pending:
                if self._running_record(spec) is None:
                    failures[spec.name] = "server process exited during startup"
                elif not _is_healthy(spec):
                    still_pending.append(spec)
            pending = still_pending
            if pending and time.monotonic() >= deadline:
                failures.update({spec.name: f"not healthy after {timeout_s:.0f} s" for spec in pending})
                break
            if pending:
                time.sleep(_HEALTH_POLL_S)
        if failures:
            raise WorkerStartError(
                {name: self._give_up_on(name, why) for name, why in failures.items()}
            )

    def _give_up_on(self, name: str, why: str) -> str:
        """Stop a server that failed to start; the reason, with the end of its log."""
        spec = next(s for s in self.config.servers if s.name == name)
        self._stop_one(spec)
        log_path = self._log_path(spec)
        return f"{why}; {log_path} ends with:\n{log_tail(log_path)}"

    def _stop_one(self, spec: ServerSpec) -> None:
        record = self._load_record(spec)
        if record is not None:
            stop_group(record, self.config.stop_grace_s)
        self._reap(spec.name)
        self._state_path(spec).unlink(missing_ok=True)

    def _status(self, spec: ServerSpec) -> WorkerStatus:
        record = self._running_record(spec)
        alive = record is not None
        healthy = alive and _is_healthy(spec)
        return WorkerStatus(
            name=spec.name,
            state="healthy" if healthy else "unhealthy" if alive else "stopped",
            url=spec.url,
            openai_base_url=spec.openai_base_url,
            served_model_name=spec.served_name,
            pid=record.pid if record else None,
            alive=alive,
            healthy=healthy,
            uptime_s=round(time.time() - record.started_at, 1) if record else None,
            log_path=self._log_path(spec),
        )

    def _running_record(self, spec: ServerSpec) -> WorkerRecord | None:
        """The server's record if its process still runs; a stale record is removed."""
        record = self._load_record(spec)
        if record is None:
            return None
        if leader_is_alive(record):
            return record
        # If the leader died but processes it spawned linger, keep the record so `stop` ends them.
        if not group_members(record):
            self._state_path(spec).unlink(missing_ok=True)
        return None

    def _load_record(self, spec: ServerSpec) -> WorkerRecord | None:
        path = self._state_path(spec)
        return WorkerRecord.load(path) if path.exists() else None

    def _reap(self, name: str) -> None:
        process = self._children.pop(name, None)
        if process is not None:
            process.wait(timeout=5)

    def _state_path(self, spec: ServerSpec) -> Path:
        return self.config.state_dir / f"{spec.name}.json"

    def _log_path(self, spec: ServerSpec) -> Path:
        return self.config.state_dir / f"{spec.name}.log"


def ensure_vllm_venv(venv: Path, flavor: str) -> None:
    """Create `venv` with vLLM through infra/vllm/install-venv.sh unless vLLM is already there."""
    if any(venv.glob("lib/python3*/site-packages/vllm/__init__.py")):
        return
    if not INSTALL_SCRIPT.exists():
        raise WorkerStartError({"venv": f"no vLLM in {venv} and no installer at {INSTALL_SCRIPT}"})
    # The installer's progress goes to stderr: stdout may be carrying a JSON report.
    result = subprocess.run(["bash", str(INSTALL_SCRIPT), str(venv.absolute()), flavor], stdout=sys.stderr)
    if result.returncode != 0:
        raise WorkerStartError({"venv": f"{INSTALL_SCRIPT} {venv} {flavor} failed (exit {result.returncode})"})


@functools.cache
def _health_client() -> httpx.Client:
    # One client for every poll: a new one loads the CA bundle again (~0.1 s of CPU each time,
    # taken from servers that are starting up on the same cores).
    return httpx.Client(timeout=_HEALTH_TIMEOUT_S)


def _is_healthy(spec: ServerSpec) -> bool:
    try:
        return _health_client().get(f"{spec.url}/health").status_code == 200
    except httpx.HTTPError:
        return False

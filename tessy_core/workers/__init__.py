"""Local vLLM servers: launch, supervise and stop the servers a `workers:` config describes."""

from tessy_core.workers.config import ServerSpec, WorkersConfig
from tessy_core.workers.pool import StopResult, WorkerPool, WorkerStartError, WorkerStatus

__all__ = ["ServerSpec", "StopResult", "WorkerPool", "WorkerStartError", "WorkerStatus", "WorkersConfig"]

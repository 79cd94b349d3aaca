"""Which vLLM servers run on this machine, and how each is launched (YAML section `workers:`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# `vllm serve`: the entry point that runs several API processes in front of one engine.
VLLM_CLI_MODULE = "vllm.entrypoints.cli.main"
OMP_BIND = "VLLM_CPU_OMP_THREADS_BIND"
# Addresses a server may bind to that a client cannot connect to as such.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSpec(_Strict):
    """One vLLM OpenAI-compatible server serving one model."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="also names its state and log files")
    model_path: str = Field(description="local model folder or hub id")
    served_model_name: str | None = Field(None, description="the `model` clients send; default: name")
    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    venv: Path = Field(Path(".venvs/vllm"), description="virtualenv with vLLM (see infra/vllm/install-venv.sh)")
    flavor: Literal["cpu", "gpu"] = "cpu"
    max_model_len: int = Field(2048, ge=16)
    dtype: str = "bfloat16"
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="cpu only: KV cache size (VLLM_CPU_KVCACHE_SPACE)")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="gpu only")
    tensor_parallel_size: int | None = Field(None, ge=1, description="gpu only")
    api_servers: int = Field(
        1, ge=1, description=(
            "gpu only: API processes in front of the engine (vllm serve --api-server-count); a TESSY build "
            "sends a request per span, and one process's per-request work limits the teacher near 128 "
            "samples in flight (docs/sizing.md §9)"
        ),
    )
    extra_args: list[str] = Field(default_factory=list, description="appended to the server's command line")
    env: dict[str, str] = Field(default_factory=dict, description="set for the server, over the defaults")

    @model_validator(mode="after")
    def _gpu_options_need_gpu(self) -> "ServerSpec":
        if self.flavor == "cpu":
            gpu_only = [f for f in ("gpu_memory_utilization", "tensor_parallel_size") if getattr(self, f) is not None]
            # vllm-cpu's `vllm serve` entry point fails on its package metadata (it is not named "vllm").
            gpu_only += ["api_servers"] if self.api_servers > 1 else []
            if gpu_only:
                raise ValueError(f"server {self.name!r}: {', '.join(gpu_only)} only apply to flavor 'gpu'")
        return self

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.name

    @property
    def url(self) -> str:
        """The server root as a client on this machine reaches it (`/health`, `/metrics`)."""
        host = _WILDCARD_HOSTS.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What goes into a model's `endpoints` list."""
        return f"{self.url}/v1"

    def command(self) -> list[str]:
        python = (self.venv / "bin" / "python").absolute()
        entry = [VLLM_SERVER_MODULE] if self.api_servers == 1 else [VLLM_CLI_MODULE, "serve"]
        args = [
            str(python), "-m", *entry,
            "--model", self.model_path,
            "--served-model-name", self.served_name,
            "--host", self.host,
            "--port", str(self.port),
            "--dtype", self.dtype,
            "--max-model-len", str(self.max_model_len),
        ]  # fmt: skip
        if self.flavor == "cpu":
            # CUDA graphs do not exist on CPU; eager mode also skips a slow compile at startup.
            args.append("--enforce-eager")
        if self.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.tensor_parallel_size is not None:
            args += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.api_servers > 1:
            args += ["--api-server-count", str(self.api_servers)]
        return args + self.extra_args

    def environment(self) -> dict[str, str]:
        """Variables set for the server on top of the launching process's environment."""
        # vLLM takes at most 4 stop strings per request unless told otherwise; span requests send the
        # end-of-thinking markers and the predictors' handover stops (docs/engine.md).
        env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_MAX_STOP_STRINGS": "64"}
        if Path(self.model_path).is_dir():
            env["HF_HUB_OFFLINE"] = "1"
        if self.flavor == "cpu":
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kvcache_space_gib)
        return {**env, **self.env}


class WorkersConfig(_Strict):
    """The servers `tessy workers` launches and supervises on this machine."""

    servers: list[ServerSpec] = Field(min_length=1)
    state_dir: Path = Field(Path("var/workers"), description="pid/state files and server logs")
    startup_timeout_s: float = Field(300.0, gt=0, description="how long `start` waits for /health")
    stop_grace_s: float = Field(15.0, ge=0, description="SIGTERM to SIGKILL")

    @model_validator(mode="after")
    def _distinct_servers(self) -> "WorkersConfig":
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"server names must be unique: {names}")
        addresses = [(s.host, s.port) for s in self.servers]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"server host:port pairs must be unique: {addresses}")
        return self

    def cpu_cores(self, spec: ServerSpec, cores: Sequence[int] | None = None) -> list[int] | None:
        """The cores a CPU server runs on, or None to leave its placement to vLLM and the OS.

        vLLM's own choice ("auto") pins every CPU server's compute threads to the same first cores
        of the machine and lets its API server and engine-core processes (which spin while they
        wait on each other) run anywhere, so several servers on one machine queue on one core
        while their spinning takes the others. With several CPU servers the usable cores (`cores`, default: this process's affinity) are
        split between them, a contiguous share each; with more servers than cores each gets one
        core, in turn (unpinned, each server would run as many threads as there are cores, and they
        would contend: slower again on the 2-core machine this was measured on, docs/sizing.md §9).
        A single server, or a binding named in the server's `env` or in the launching environment,
        is left as it is.
        """
        shared = [s for s in self.servers if s.flavor == "cpu" and OMP_BIND not in s.env]
        if spec not in shared or len(shared) < 2 or OMP_BIND in os.environ:
            return None
        cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
        index = shared.index(spec)
        if len(shared) > len(cores):
            return [cores[index % len(cores)]]
        share = len(cores) // len(shared)
        return cores[index * share : (index + 1) * share]

"""Settings of the sandbox (per deployment) and limits of one prompt's tests (per program)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class ExecutionLimits(BaseModel):
    """Per-prompt limits, as stored with the prompt (`time_limit_s`, `memory_limit_mb`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit_s: float = Field(default=2.0, gt=0, le=600, description="CPU seconds per test")
    memory_limit_mb: int = Field(default=256, ge=16, le=65536, description="address space for the program")

    @classmethod
    def from_prompt(cls, prompt: Mapping[str, Any]) -> ExecutionLimits:
        """Limits of a catalog prompt row; missing or null fields take the defaults."""
        given = {key: prompt[key] for key in ("time_limit_s", "memory_limit_mb") if prompt.get(key) is not None}
        return cls(**given)


class Comparison(BaseModel):
    """How outputs are compared (see `tessy_core.verify.compare`): exact, except a tolerance where the
    expected token or value is a float. Per source in `SandboxConfig.comparison_by_source`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    float_abs_tol: float = Field(default=1e-6, ge=0, description="tolerance where the expected value is a float")
    float_rel_tol: float = Field(default=1e-6, ge=0)
    comparison_by_source: dict[str, Comparison] = Field(
        default_factory=dict, description="catalog source name -> its checker tolerance (else the two above)")


class SandboxConfig(BaseModel):
    """How the sandbox runs programs. Loaded from YAML with `SandboxConfig.from_yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int | None = Field(default=None, ge=1, description="zygote processes; default: usable CPU cores")
    wall_time_factor: float = Field(default=2.0, ge=1.0, description="wall limit = time limit * factor + grace")
    wall_time_grace_s: float = Field(default=0.5, ge=0)
    max_output_bytes: int = Field(default=8 << 20, ge=1024, description="stdout beyond this kills the program")
    detail_chars: int = Field(default=1000, ge=0, description="stdout/stderr/expected kept per test detail")
    max_processes: int = Field(default=32, ge=1, description="tasks (processes and threads) of a program's whole tree")
    max_open_files: int = Field(default=64, ge=8)
    max_file_mb: int = Field(default=32, ge=0, description="RLIMIT_FSIZE")
    scratch_mb: int = Field(default=256, ge=16, description="tmpfs per zygote holding the working directories")
    float_abs_tol: float = Field(default=1e-6, ge=0, description="tolerance where the expected value is a float")
    float_rel_tol: float = Field(default=1e-6, ge=0)
    comparison_by_source: dict[str, Comparison] = Field(
        default_factory=dict, description="catalog source name -> its checker tolerance (else the two above)")
    stop_on_first_failure: bool = True
    uid_base: int = Field(default=64000, ge=1000, description="first uid of the per-worker program uids")
    uid_slots: int = Field(default=512, ge=1, description="how many uids from uid_base may be claimed")
    python_executable: str | None = Field(
        default=None, description="interpreter of the zygotes (programs get its stdlib); default: this one's base")
    cxx_compiler: str = "g++"
    cxx_flags: tuple[str, ...] = ("-O2", "-std=c++17", "-pipe")
    compile_time_limit_s: float = Field(default=30.0, gt=0)
    compile_memory_mb: int = Field(default=2048, ge=64)
    reply_grace_s: float = Field(default=10.0, gt=0, description="extra wait for a zygote reply before restarting it")

    @classmethod
    def from_yaml(cls, path: str | Path) -> SandboxConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of sandbox settings")
        return cls(**data)

    def comparison(self, source: str | None = None) -> Comparison:
        """The comparison of a prompt from `source` (a catalog source name), or the default one."""
        if source is not None and source in self.comparison_by_source:
            return self.comparison_by_source[source]
        return Comparison(float_abs_tol=self.float_abs_tol, float_rel_tol=self.float_rel_tol)

    def worker_count(self) -> int:
        return self.workers or len(os.sched_getaffinity(0))

    def wall_limit_s(self, time_limit_s: float) -> float:
        return time_limit_s * self.wall_time_factor + self.wall_time_grace_s

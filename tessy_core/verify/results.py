"""Verdicts and the per-program verification result stored with each dataset row."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Verdict(str, Enum):
    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"
    NO_CODE = "no_code"


class TestOutcome(BaseModel):
    """What happened on one test. Texts are truncated to `SandboxConfig.detail_chars`."""

    model_config = ConfigDict(extra="forbid")

    index: int
    verdict: Verdict
    hidden: bool = False
    cpu_s: float = 0.0
    wall_s: float = 0.0
    exit_code: int | None = None
    message: str | None = Field(default=None, description="why the verdict, when it is not obvious")
    stdout: str = ""
    stderr: str = ""
    expected: str = ""


class VerificationResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    passed: int
    total: int
    tests: list[TestOutcome] = Field(default_factory=list)
    wall_s: float = 0.0
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED

    def to_record(self) -> dict[str, Any]:
        """Flat, JSON-friendly columns for a dataset row."""
        details = {"message": self.message, "wall_s": round(self.wall_s, 6), "tests": [t.model_dump(mode="json") for t in self.tests]}
        return {
            "verdict": self.verdict.value,
            "passed": self.passed,
            "total": self.total,
            "details_json": json.dumps(details, ensure_ascii=False, sort_keys=True),
        }

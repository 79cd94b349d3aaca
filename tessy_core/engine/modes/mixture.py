"""mixture: each sample is written teacher_only or student_only, drawn from its sample id so that
`engine.mixture_teacher_share` of the samples are the teacher's; the same sample always draws
the same mode."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tessy_core.engine.modes.base import ModePlan, register, registered
from tessy_core.engine.records import Role, SampleRequest

if TYPE_CHECKING:
    from tessy_core.config import EngineConfig
    from tessy_core.engine.loop import Attempt


def draw(sample_id: str) -> float:
    """A number in [0, 1) fixed by the sample id."""
    return int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:8], "big") / 2**64


class Mixture(ModePlan):
    """Never runs itself: `for_sample` hands each sample to the plan it draws."""

    name = "mixture"
    thinking_roles = (Role.teacher, Role.student)
    answer_roles = (Role.teacher, Role.student)

    @property
    def interleaved(self) -> bool:
        return False

    def for_sample(self, request: SampleRequest, engine: EngineConfig) -> ModePlan:
        drawn = "teacher_only" if draw(request.sample_id) < engine.mixture_teacher_share else "student_only"
        return registered()[drawn]

    def attempt(self, run: Attempt) -> AsyncIterator[None]:
        raise RuntimeError("mixture draws a plan per sample (for_sample); it writes nothing itself")


register(Mixture())

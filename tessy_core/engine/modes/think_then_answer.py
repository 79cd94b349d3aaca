"""The modes that write a sample in one pass: thinking by one model or both interleaved, then the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tessy_core.engine.modes.base import ModePlan, Phase, register
from tessy_core.engine.records import Role

if TYPE_CHECKING:
    from tessy_core.engine.loop import Attempt


class ThinkThenAnswer(ModePlan):
    """One pass on the problem as given; the sample is its text. The only kind of plan whose
    samples are checkpointed mid-trace and resumed."""

    def __init__(self, name: str, writers: tuple[Role, ...], answer_role: Role):
        self.name = name
        self.opening = Phase(writers, answer_role)
        self.thinking_roles = writers
        self.answer_roles = (answer_role,)

    async def attempt(self, run: Attempt) -> AsyncIterator[None]:
        draft = run.own_draft()
        async for _ in run.write(draft, self.opening):
            yield
        run.finish(draft, self.opening.answer_role)


TEACHER, STUDENT = Role.teacher, Role.student

register(ThinkThenAnswer("tessy", (STUDENT, TEACHER), STUDENT))  # interleaved thinking, the student answers
register(ThinkThenAnswer("teacher_only", (TEACHER,), TEACHER))
register(ThinkThenAnswer("student_only", (STUDENT,), STUDENT))
register(ThinkThenAnswer("teacher_think", (TEACHER,), STUDENT))
register(ThinkThenAnswer("teacher_answer", (STUDENT,), TEACHER))

"""teacher_reference_rewrite: the teacher solves the problem (thinking and answer), then the student
solves it again in its own words with the teacher's solution in its prompt. The sample is the
student's pass, under the problem alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tessy_core.engine.modes.base import ModePlan, Phase, register
from tessy_core.engine.records import Role

if TYPE_CHECKING:
    from tessy_core.engine.loop import Attempt


def rewrite_prompt(problem: str, reference_thinking: str, reference_answer: str) -> str:
    """The student's user message: the problem, then the reference solution to rewrite."""
    return (
        f"{problem}\n\n"
        "Below is a reference solution to this problem. Solve the problem yourself, reasoning in your own "
        "words and your own way; use the reference's ideas where they help.\n\n"
        f"Reference reasoning:\n{reference_thinking.strip()}\n\n"
        f"Reference answer:\n{reference_answer}"
    )


class ReferenceRewrite(ModePlan):
    name = "teacher_reference_rewrite"
    opening = Phase((Role.teacher,), Role.teacher)  # the reference, on the problem as given
    rewrite = Phase((Role.student,), Role.student)
    thinking_roles = (Role.teacher, Role.student)
    answer_roles = (Role.teacher, Role.student)

    @property
    def answer_role(self) -> Role:
        return self.rewrite.answer_role

    async def attempt(self, run: Attempt) -> AsyncIterator[None]:
        reference = run.side_draft("reference", self.opening)
        async for _ in run.write(reference, self.opening):
            yield
        rewritten = run.side_draft("rewrite", self.rewrite)
        prompt = rewrite_prompt(run.request.problem, reference.thinking, reference.answer)
        async for _ in run.write(rewritten, self.rewrite, problem=prompt):
            yield
        run.finish(
            rewritten,
            self.rewrite.answer_role,
            reference={"writer": Role.teacher.value, "thinking": reference.thinking, "answer": reference.answer},
        )


register(ReferenceRewrite())

"""student_best_of_n: the student solves the problem `engine.best_of_n` times (each a student_only
pass with its own seeds) and the teacher, shown the candidates' answers, names the best one. The
sample is the chosen candidate."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tessy_core.engine.modes.base import ModePlan, Phase, register
from tessy_core.engine.records import Role, SampleFailed

if TYPE_CHECKING:
    from tessy_core.engine.loop import Attempt, Draft

CHOICE_LINE = "Best candidate:"
_CHOICE = re.compile(rf"{re.escape(CHOICE_LINE)}\s*#?\s*(\d+)", re.IGNORECASE)


def judge_prompt(problem: str, answers: list[str]) -> str:
    """The teacher's user message: the problem, the numbered candidate answers, and how to answer."""
    listed = "\n\n".join(f"Candidate {number}:\n{answer}" for number, answer in enumerate(answers, 1))
    return (
        f"{problem}\n\n"
        f"Here are {len(answers)} candidate solutions to this problem.\n\n{listed}\n\n"
        "Decide which candidate is most likely correct and complete. End your answer with one line "
        f"`{CHOICE_LINE} N`, where N is that candidate's number."
    )


def parse_choice(reply: str, candidates: int) -> int | None:
    """The 1-based candidate the judge's reply names on its last choice line, if it names one."""
    found = _CHOICE.findall(reply)
    if not found:
        return None
    number = int(found[-1])
    return number if 1 <= number <= candidates else None


class StudentBestOfN(ModePlan):
    name = "student_best_of_n"
    opening = Phase((Role.student,), Role.student)  # one candidate
    judging = Phase((Role.teacher,), Role.teacher)
    thinking_roles = (Role.student, Role.teacher)
    answer_roles = (Role.student, Role.teacher)

    async def attempt(self, run: Attempt) -> AsyncIterator[None]:
        candidates: list[Draft] = []
        failures: list[str] = []
        for index in range(run.engine.best_of_n):
            candidate = run.side_draft(f"candidate-{index + 1}", self.opening)
            try:
                async for _ in run.write(candidate, self.opening):
                    yield
            except SampleFailed as failure:
                if failure.final:
                    raise
                failures.append(f"candidate {index + 1}: {failure}")  # the others may still make the sample
                continue
            candidates.append(candidate)
        if not candidates:
            raise SampleFailed("no_candidates", f"all {run.engine.best_of_n} student candidates failed: {'; '.join(failures)}")

        judge = run.side_draft("judge", self.judging)
        prompt = judge_prompt(run.request.problem, [candidate.answer for candidate in candidates])
        async for _ in run.write(judge, self.judging, problem=prompt):
            yield
        chosen = parse_choice(judge.answer, len(candidates))
        if chosen is None:
            raise SampleFailed(
                "unparseable_choice",
                f"the teacher's reply names no candidate 1..{len(candidates)} on a `{CHOICE_LINE} N` line: "
                f"{judge.answer[-200:]!r}",
            )
        run.finish(
            candidates[chosen - 1],
            self.opening.answer_role,
            candidates={
                "writer": Role.student.value,
                "answers": [candidate.answer for candidate in candidates],
                "failures": failures,
            },
            choice={"writer": Role.teacher.value, "chosen": chosen, "reply": judge.answer},
        )


register(StudentBestOfN())

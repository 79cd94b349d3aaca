"""Modes as plans: the registry, and the paper's other baselines on scripted backends (narrow tests
of what each plan asks of which model and what the sample keeps)."""

from __future__ import annotations

import pytest

from tessy_core.chat import ChatFormat
from tessy_core.config import (
    FAMILY_MARKERS,
    EngineConfig,
    Mode,
    ModelFamily,
    SamplingConfig,
)
from tessy_core.engine import (
    CooperativeDecoder,
    Participant,
    Role,
    SampleRequest,
    SpanEnd,
)
from tessy_core.engine.modes import mode_plan, registered
from tessy_core.engine.modes.best_of_n import parse_choice
from tessy_core.engine.modes.mixture import draw
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.scripted import FINAL_HEADER, ScriptedBackend

REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem="Sum the list.")


class SeedRecordingBackend(ScriptedBackend):
    def __init__(self, name, replies):
        super().__init__(name, replies)
        self.seeds: list[int | None] = []

    async def complete(self, prompt, *, max_tokens, sampling, stop=(), affinity_key=None):
        self.seeds.append(sampling.seed)
        return await super().complete(prompt, max_tokens=max_tokens, sampling=sampling, stop=stop, affinity_key=affinity_key)


def _decoder(teacher_replies, student_replies, mode: Mode, **engine) -> CooperativeDecoder:
    def participant(role, replies, family, tag, style):
        chat = ChatFormat(lambda problem: f"[{tag}]{problem}[/{tag}]", FAMILY_MARKERS[family])
        return Participant(role, SeedRecordingBackend(role.value, replies), chat, span_tokens=10,
                           sampling=SamplingConfig(), send_seed=True, predictor=LexiconPredictor(style))

    teacher = participant(Role.teacher, teacher_replies, ModelFamily.harmony, "T", ["Thus"])
    student = participant(Role.student, student_replies, ModelFamily.qwen3, "S", ["Okay,"])
    return CooperativeDecoder(teacher, student, EngineConfig(mode=mode, **engine), config_hash="test")


def _prompts(decoder, role):
    return decoder.participants[role].backend.prompts


def teacher_solves(thinking: str, answer: str):
    """The teacher's replies for one thinking-then-answer pass (harmony: end, final header, answer)."""
    return [(f"{thinking}<|end|>", "stop"), FINAL_HEADER, (answer, "stop")]


def student_solves(thinking: str, answer: str):
    return [(f"{thinking}</think>", "stop"), (answer, "stop")]


def test_every_mode_has_a_plan_and_every_plan_a_mode():
    assert set(registered()) == {mode.value for mode in Mode}


def test_the_first_five_modes_keep_their_turn_order_and_answer_writer():
    openings = {mode: mode_plan(mode).opening for mode in list(Mode)[:5]}
    assert {mode: (phase.writers, phase.answer_role) for mode, phase in openings.items()} == {
        Mode.tessy: ((Role.student, Role.teacher), Role.student),
        Mode.teacher_only: ((Role.teacher,), Role.teacher),
        Mode.student_only: ((Role.student,), Role.student),
        Mode.teacher_think: ((Role.teacher,), Role.student),
        Mode.teacher_answer: ((Role.student,), Role.teacher),
    }
    assert [mode for mode in Mode if mode_plan(mode).interleaved] == [Mode.tessy]


async def test_the_student_rewrites_the_teachers_reference_in_its_own_words():
    decoder = _decoder(
        teacher_replies=teacher_solves(" We need the sum. Compute it.", "print(sum(xs))"),
        student_replies=student_solves("Okay, so I add them all up.", "print(sum(map(int, xs)))"),
        mode=Mode.teacher_reference_rewrite,
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert result.mode == "teacher_reference_rewrite"
    # The teacher solved the problem as given; the student saw the problem and the whole reference.
    assert _prompts(decoder, Role.teacher)[0] == "[T]Sum the list.[/T]<|channel|>analysis<|message|>"
    student_prompt = _prompts(decoder, Role.student)[0]
    assert student_prompt.startswith("[S]Sum the list.\n\nBelow is a reference solution")
    assert "We need the sum. Compute it." in student_prompt and "print(sum(xs))" in student_prompt
    # The sample is the student's pass, under the problem alone.
    assert result.messages[0] == {"role": "user", "content": "Sum the list."}
    assert result.thinking == "Okay, so I add them all up." and result.answer == "print(sum(map(int, xs)))"
    assert [(s.role, s.ended_by) for s in result.spans] == [(Role.student, SpanEnd.single_writer)]
    assert result.answer_role is Role.student and result.teacher_token_share == 0.0
    assert result.mode_details == {
        "reference": {"writer": "teacher", "thinking": " We need the sum. Compute it.", "answer": "print(sum(xs))"}
    }
    assert result.usage[Role.teacher].requests == 3 and result.usage[Role.student].requests == 2


async def test_a_failed_rewrite_retries_the_whole_attempt_with_a_new_reference():
    decoder = _decoder(
        teacher_replies=teacher_solves(" first.", "a1") + teacher_solves(" second.", "a2"),
        student_replies=student_solves("Okay, one.", "  ") + student_solves("Okay, two.", "b2"),
        mode=Mode.teacher_reference_rewrite,
    )
    result = await decoder.generate(REQUEST)

    assert result.ok and result.attempts == 2
    assert result.attempt_failures[0].startswith("empty_answer")
    assert result.mode_details["reference"]["answer"] == "a2" and result.answer == "b2"


async def test_the_teacher_picks_the_best_of_n_student_candidates():
    decoder = _decoder(
        teacher_replies=teacher_solves(" Compare them.", "The second one handles empty input.\nBest candidate: 2"),
        student_replies=[
            *student_solves("Okay, loop.", "code-1"),
            *student_solves("Okay, builtin.", "code-2"),
            *student_solves("Okay, recursion.", "code-3"),
        ],
        mode=Mode.student_best_of_n,
        best_of_n=3,
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert result.thinking == "Okay, builtin." and result.answer == "code-2"
    assert result.answer_role is Role.student and [s.role for s in result.spans] == [Role.student]
    # Each candidate was sampled with seeds of its own.
    student_seeds = decoder.participants[Role.student].backend.seeds
    assert len(student_seeds) == 6 and len(set(student_seeds)) == 6
    judge_prompt = _prompts(decoder, Role.teacher)[0]
    assert all(f"Candidate {n}:\ncode-{n}" in judge_prompt for n in (1, 2, 3))
    assert result.mode_details["candidates"] == {"writer": "student", "answers": ["code-1", "code-2", "code-3"], "failures": []}
    assert result.mode_details["choice"]["writer"] == "teacher" and result.mode_details["choice"]["chosen"] == 2


async def test_a_failed_candidate_is_left_out_and_the_rest_are_numbered_for_the_teacher():
    decoder = _decoder(
        teacher_replies=teacher_solves(" Pick.", "Best candidate: 1"),
        student_replies=[*student_solves("Okay, a.", "  "), *student_solves("Okay, b.", "code-b")],
        mode=Mode.student_best_of_n,
        best_of_n=2,
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert result.answer == "code-b"
    assert "Candidate 1:\ncode-b" in _prompts(decoder, Role.teacher)[0]
    assert result.mode_details["candidates"]["failures"][0].startswith("candidate 1: empty_answer")


@pytest.mark.parametrize("reply", ["They all look fine.", "Best candidate: 3", "best candidate: zero"])
async def test_a_choice_the_engine_cannot_read_fails_the_sample_with_its_reason(reply):
    decoder = _decoder(
        teacher_replies=teacher_solves(" Hmm.", reply),
        student_replies=[*student_solves("Okay, a.", "code-a"), *student_solves("Okay, b.", "code-b")],
        mode=Mode.student_best_of_n,
        best_of_n=2,
        max_attempts=1,
    )
    result = await decoder.generate(REQUEST)

    assert not result.ok and result.answer == ""
    assert result.failure_reason.startswith("unparseable_choice: the teacher's reply names no candidate 1..2")


async def test_no_candidate_left_fails_the_attempt():
    decoder = _decoder(
        teacher_replies=[],
        student_replies=[*student_solves("Okay, a.", " "), *student_solves("Okay, b.", " ")],
        mode=Mode.student_best_of_n,
        best_of_n=2,
        max_attempts=1,
    )
    result = await decoder.generate(REQUEST)

    assert result.failure_reason.startswith("no_candidates: all 2 student candidates failed")
    assert _prompts(decoder, Role.teacher) == []


def test_the_choice_is_read_from_the_last_choice_line():
    assert parse_choice("Best candidate: 1\n...on second thought\nBest Candidate: #3", 3) == 3
    assert parse_choice("Best candidate: 4", 3) is None
    assert parse_choice("candidate 2 is best", 3) is None


@pytest.mark.parametrize(("share", "expected"), [(1.0, {"teacher"}), (0.0, {"student"})])
async def test_a_mixture_at_the_ends_of_its_range_is_one_mode(share, expected):
    requests = [SampleRequest(f"s{i}", "p", "Sum the list.") for i in range(4)]
    decoder = _decoder(teacher_solves(" t.", "ta") * 4, student_solves("Okay.", "sa") * 4,
                       mode=Mode.mixture, mixture_teacher_share=share)
    results = [await decoder.generate(request) for request in requests]

    assert all(r.ok and r.mode == "mixture" for r in results)
    assert {r.answer_role.value for r in results} == expected
    assert {r.spans[0].role.value for r in results} == expected
    assert {r.mode_details["drawn_mode"] for r in results} == {f"{role}_only" for role in expected}


async def test_a_mixture_draws_each_sample_by_its_id_at_the_configured_share():
    ids = [f"sample-{i}" for i in range(2000)]
    share = sum(draw(i) < 0.3 for i in ids) / len(ids)
    assert share == pytest.approx(0.3, abs=0.03)

    teacher_id = next(i for i in ids if draw(i) < 0.3)
    student_id = next(i for i in ids if draw(i) >= 0.3)
    for sample_id, writer in ((teacher_id, Role.teacher), (student_id, Role.student)):
        decoder = _decoder([], [], mode=Mode.mixture, mixture_teacher_share=0.3, max_attempts=1)
        failed = await decoder.generate(SampleRequest(sample_id, "p", "Sum the list."))
        # Even a failed sample says which plan drew it and whose answer it would have kept.
        assert failed.answer_role is writer and failed.mode_details == {"drawn_mode": f"{writer.value}_only"}
        assert len(_prompts(decoder, writer)) == 1 and _prompts(decoder, writer.other) == []

from __future__ import annotations

import asyncio

import pytest

from tessy_core.backends.base import BackendError
from tessy_core.chat import ChatFormat
from tessy_core.config import FAMILY_MARKERS, EngineConfig, Mode, ModelFamily, SamplingConfig
from tessy_core.engine import CooperativeDecoder, Participant, Role, SampleRequest, SpanEnd, run_samples
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.scripted import FINAL_HEADER, ScriptedBackend

STUDENT_STYLE = ["Okay,", "Okay, so", "Hmm,", "so", "Wait,", "let me see"]
TEACHER_STYLE = ["We need to", "Thus", "Compute:", "Now"]


def _format(family: ModelFamily, tag: str) -> ChatFormat:
    return ChatFormat(lambda problem: f"[{tag}]{problem}[/{tag}]", FAMILY_MARKERS[family])


def _decoder(teacher_replies, student_replies, mode=Mode.tessy, **engine) -> CooperativeDecoder:
    teacher = Participant(
        Role.teacher, ScriptedBackend("teacher", teacher_replies), _format(ModelFamily.harmony, "T"),
        span_tokens=10, sampling=SamplingConfig(), send_seed=True, predictor=LexiconPredictor(TEACHER_STYLE),
    )
    student = Participant(
        Role.student, ScriptedBackend("student", student_replies), _format(ModelFamily.qwen3, "S"),
        span_tokens=5, sampling=SamplingConfig(), send_seed=True, predictor=LexiconPredictor(STUDENT_STYLE),
    )
    return CooperativeDecoder(teacher, student, EngineConfig(mode=mode, **engine), config_hash="test")


REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem="Sum the list.")


async def test_interleaves_cuts_at_boundaries_and_student_answers():
    decoder = _decoder(
        teacher_replies=[
            (" we read n numbers. Thus print", "length"),  # cut before " Thus": 2 tokens rolled back
            (" sum of them.<|end|>", "stop"), FINAL_HEADER,  # the teacher ends the thinking (harmony marker)
        ],
        student_replies=[
            ("Okay, so the sum", "length"),  # cut at " the" (capability)
            (" Hmm, so the loop", "length"),  # cut at " the"
            ("```python\nprint(1)\n```", "stop"),  # the final answer
        ],
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text) for s in result.spans] == [
        (Role.student, "Okay, so"),
        (Role.teacher, " we read n numbers."),
        (Role.student, " Hmm, so"),
        (Role.teacher, " sum of them."),
    ]
    assert [s.ended_by for s in result.spans] == [SpanEnd.boundary] * 3 + [SpanEnd.end_of_thinking]
    assert result.thinking == "Okay, so we read n numbers. Hmm, so sum of them."
    # The teacher's end of thinking is normalized to the student's own marker.
    assert result.assistant == "<think>\n" + result.thinking + "\n</think>\n\n```python\nprint(1)\n```"
    assert result.answer_role is Role.student
    assert result.usage[Role.teacher].tokens_discarded == 2  # "Thus print"
    assert result.usage[Role.student].requests == 3
    # Character ranges tile the thinking text.
    assert [(s.start, s.end) for s in result.spans] == [(0, 8), (8, 27), (27, 35), (35, 48)]
    assert result.teacher_token_share == pytest.approx(7 / 11)


async def test_student_closes_after_the_teachers_end_of_thinking():
    decoder = _decoder(
        teacher_replies=[(" we read n numbers.<|end|>", "stop"), FINAL_HEADER],
        student_replies=[
            ("Okay, so the sum", "length"),  # cut at " the" (capability)
            (" Hmm, so</think>", "stop"),  # its closing words (all style); it ends the thinking itself
            ("```python\nprint(1)\n```", "stop"),  # the final answer
        ],
        after_teacher_ends="student_closes",
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text, s.ended_by) for s in result.spans] == [
        (Role.student, "Okay, so", SpanEnd.boundary),
        (Role.teacher, " we read n numbers.", SpanEnd.end_of_thinking),
        (Role.student, " Hmm, so", SpanEnd.end_of_thinking),
    ]
    assert result.assistant == "<think>\nOkay, so we read n numbers. Hmm, so\n</think>\n\n```python\nprint(1)\n```"
    assert result.usage[Role.student].requests == 3


async def test_the_students_closing_span_ends_at_its_first_capability_token():
    decoder = _decoder(
        teacher_replies=[(" we read n numbers.<|end|>", "stop"), FINAL_HEADER],
        student_replies=[
            ("Okay, so the sum", "length"),
            (" Hmm, so the loop adds", "length"),  # cut at " the": the engine closes the thinking there
            ("```python\nprint(1)\n```", "stop"),
        ],
        after_teacher_ends="student_closes",
    )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    assert result.thinking == "Okay, so we read n numbers. Hmm, so"
    assert result.spans[-1].role is Role.student and result.spans[-1].ended_by is SpanEnd.boundary
    # The teacher was not asked again: its span, then the check that its next message is the final one.
    assert len(decoder.participants[Role.teacher].backend.prompts) == 2


class _StreamReadingLexicon(LexiconPredictor):
    """A lexicon predictor that keeps per-trace state the way the incremental one does."""

    reads_streams = True

    def __init__(self, phrases, log):
        super().__init__(phrases)
        self.log = log

    async def find_boundary(self, context, chunk, target, min_offset=0, *, stream=None, lookahead=False):
        self.log.append(("read", stream))
        return await super().find_boundary(context, chunk, target, min_offset)

    def release(self, stream):
        self.log.append(("release", stream))


async def test_predictors_keep_a_traces_reading_until_its_thinking_ends():
    decoder = _decoder(
        teacher_replies=[(" we read n numbers.<|end|>", "stop"), FINAL_HEADER],
        student_replies=[("Okay, so the sum", "length"), (" Hmm, so</think>", "stop"), ("print(1)", "stop")],
        after_teacher_ends="student_closes",
    )
    log = []
    for role, phrases in ((Role.teacher, TEACHER_STYLE), (Role.student, STUDENT_STYLE)):
        participant = decoder.participants[role]
        decoder.participants[role] = Participant(
            participant.role, participant.backend, participant.chat, participant.span_tokens, participant.sampling,
            participant.send_seed, predictor=_StreamReadingLexicon(phrases, log),
        )
    result = await decoder.generate(REQUEST)

    assert result.ok, result.failure_reason
    # The teacher's end does not drop the student's reading: the student reads once more, then the
    # thinking ends and both readings are released once.
    assert log[-3:] == [("read", "s1/1/student"), ("release", "s1/1/teacher"), ("release", "s1/1/student")]
    assert [entry for entry in log if entry[0] == "release"] == [("release", "s1/1/teacher"), ("release", "s1/1/student")]


async def test_each_model_sees_its_own_template_and_the_shared_trace():
    decoder = _decoder(
        teacher_replies=[(" we add. Thus", "length"), (" done<|end|>", "stop"), FINAL_HEADER],
        student_replies=[("Okay, the plan", "length"), (" Hmm, fine", "length"), ("answer", "stop")],
    )
    await decoder.generate(REQUEST)
    teacher_prompts = decoder.participants[Role.teacher].backend.prompts
    student_prompts = decoder.participants[Role.student].backend.prompts
    assert teacher_prompts[0] == "[T]Sum the list.[/T]<|channel|>analysis<|message|>Okay,"
    assert student_prompts[1] == "[S]Sum the list.[/S]<think>\nOkay, we add."
    assert student_prompts[-1].endswith("Okay, we add. Hmm, done\n</think>\n\n")


async def test_words_are_never_split_between_models():
    # The student's predictor fires inside "thesum"-like runs: the cut moves to the word's end.
    decoder = _decoder(
        teacher_replies=[(" x<|end|>", "stop"), FINAL_HEADER],
        student_replies=[("Okay,so-the sum", "length"), ("fine", "stop")],
    )
    result = await decoder.generate(REQUEST)
    assert result.spans[0].text == "Okay,so-the"


@pytest.mark.parametrize(
    ("mode", "thinker", "answerer"),
    [
        (Mode.teacher_only, Role.teacher, Role.teacher),
        (Mode.student_only, Role.student, Role.student),
        (Mode.teacher_think, Role.teacher, Role.student),
        (Mode.teacher_answer, Role.student, Role.teacher),
    ],
)
async def test_single_writer_modes(mode, thinker, answerer):
    replies = {
        Role.teacher: [],
        Role.student: [],
    }
    end = "<|end|>" if thinker is Role.teacher else "</think>"
    replies[thinker].append(("Thinking all the way through. Thus done" + end, "stop"))
    if thinker is Role.teacher:
        replies[thinker].append(FINAL_HEADER)
    replies[answerer].append(("the answer", "stop"))
    decoder = _decoder(replies[Role.teacher], replies[Role.student], mode=mode)
    result = await decoder.generate(REQUEST)
    assert result.ok
    assert [s.role for s in result.spans] == [thinker]
    assert result.spans[0].ended_by is SpanEnd.single_writer
    assert result.answer_role is answerer
    assert result.usage[answerer].requests >= 1
    assert result.assistant.startswith("<think>\nThinking all the way through. Thus done\n</think>")


async def test_backend_failure_is_retried_from_scratch():
    decoder = _decoder(
        teacher_replies=[],
        student_replies=[BackendError("replica down"), ("Thinking.</think>", "stop"), ("ok", "stop")],
        mode=Mode.student_only,
    )
    result = await decoder.generate(REQUEST)
    assert result.ok and result.attempts == 2
    assert result.attempt_failures == ["backend_error: replica down"]


async def test_sample_that_keeps_failing_comes_back_failed_with_its_reason():
    decoder = _decoder(
        teacher_replies=[],
        student_replies=[("x " * 20, "length")] * 3,
        mode=Mode.student_only,
        max_thinking_tokens=20,
        max_attempts=3,
    )
    result = await decoder.generate(REQUEST)
    assert not result.ok
    assert result.failure_reason.startswith("thinking_token_cap")
    assert result.attempts == 3 and len(result.attempt_failures) == 3
    assert result.usage[Role.student].requests == 3


async def test_repetition_loop_fails_the_attempt():
    looping = "so the answer is " * 9
    decoder = _decoder(
        teacher_replies=[],
        student_replies=[(looping + "</think>", "stop")],
        mode=Mode.student_only,
        max_attempts=1,
    )
    result = await decoder.generate(REQUEST)
    assert result.failure_reason.startswith("repetition")


async def test_answer_cap_and_empty_answer_are_failures():
    capped = _decoder([], [("t</think>", "stop"), ("long", "length")], mode=Mode.student_only, max_attempts=1)
    assert (await capped.generate(REQUEST)).failure_reason.startswith("answer_token_cap")
    empty = _decoder([], [("t</think>", "stop"), ("  ", "stop")], mode=Mode.student_only, max_attempts=1)
    assert (await empty.generate(REQUEST)).failure_reason.startswith("empty_answer")


async def test_checkpoint_then_resume_continues_the_same_trace():
    saved = []

    async def sink(state):
        saved.append(type(state).from_record(state.to_record()))

    first = _decoder(
        teacher_replies=[(" we read. Thus", "length"), BackendError("crash")],
        student_replies=[("Okay, the list", "length")],
        checkpoint_every=1,
        max_attempts=1,
    )
    crashed = await first.generate(REQUEST, checkpoint=sink)
    assert not crashed.ok
    checkpoint = saved[-1]
    assert checkpoint.thinking == "Okay, we read." and checkpoint.active is Role.student

    second = _decoder(
        teacher_replies=[(" print it<|end|>", "stop"), FINAL_HEADER],
        student_replies=[(" Hmm, then", "length"), ("answer", "stop")],
    )
    resumed = await second.generate(REQUEST, resume=checkpoint)
    assert resumed.ok
    assert resumed.thinking == "Okay, we read. Hmm, print it"
    # Resumed: only the missing steps were requested.
    assert second.participants[Role.student].backend.prompts[0].endswith("Okay, we read.")


async def test_samples_advance_independently():
    finished: list[str] = []

    def decoder_for(delay):
        teacher = Participant(Role.teacher, ScriptedBackend("t", []), _format(ModelFamily.harmony, "T"), 10, SamplingConfig(), True)
        student = Participant(
            Role.student,
            ScriptedBackend("s", [("think</think>", "stop"), ("a", "stop")] * 4, delay_s=delay),
            _format(ModelFamily.qwen3, "S"), 5, SamplingConfig(), True,
        )
        return CooperativeDecoder(teacher, student, EngineConfig(mode=Mode.student_only), "h")

    slow, fast = decoder_for(0.2), decoder_for(0.0)

    async def run(decoder, names):
        await run_samples(
            decoder,
            [SampleRequest(n, n, "p") for n in names],
            concurrency=2,
            on_result=lambda r: finished.append(r.sample_id),
        )

    await asyncio.gather(run(slow, ["slow"]), run(fast, ["f1", "f2", "f3"]))
    assert finished[-1] == "slow"

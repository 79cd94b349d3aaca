"""Every request fits the context that is left, on a server that clamps as vLLM does.

The paper's budgets (38,000 thinking tokens, then the whole answer) do not fit a 40,960-token
server. vLLM would silently lower max_tokens; the answer would then end on length and be retried
from scratch though it can never fit. tessy keeps room for the answer while the trace grows and
ends a sample that runs out of room once, as `context_exhausted`.
"""

from __future__ import annotations

import pytest

from tessy_core.chat import ChatFormat
from tessy_core.config import FAMILY_MARKERS, EngineConfig, Mode, ModelFamily, SamplingConfig
from tessy_core.engine import CooperativeDecoder, Participant, Role, SampleRequest
from tessy_core.engine.guards import PromptTally
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.replay import ClampingBackend
from tests.engine.scripted import ScriptedBackend

PROBLEM = "Read the numbers and print their sum."
REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem=PROBLEM)
QWEN3 = ChatFormat(lambda problem: f"<|im_start|>user {problem} <|im_end|> <|im_start|>assistant\n", FAMILY_MARKERS[ModelFamily.qwen3])
HARMONY = ChatFormat(lambda problem: f"<|start|>user {problem} <|end|><|start|>assistant", FAMILY_MARKERS[ModelFamily.harmony])


def _participant(role, backend, chat, predictor=None, span_tokens=10):
    return Participant(role, backend, chat, span_tokens=span_tokens, sampling=SamplingConfig(), send_seed=False,
                       predictor=predictor, context_tokens=getattr(backend, "max_model_len", None))


def _prompt_tokens(backend: ClampingBackend) -> int:
    return backend.count_tokens(QWEN3.thinking_prompt(PROBLEM))


async def test_a_trace_that_reaches_the_limit_ends_once_and_no_request_is_clamped():
    # The paper's budgets against a 4,096-token server (the same proportions as 38K against 40,960).
    student = ClampingBackend("student", 4096, answer_marker="\n</think>\n\n", answer_words=5)
    teacher = ScriptedBackend("teacher", [])
    engine = EngineConfig(mode=Mode.student_only, max_thinking_tokens=3800, max_answer_tokens=512, max_attempts=5)
    decoder = CooperativeDecoder(_participant(Role.teacher, teacher, HARMONY), _participant(Role.student, student, QWEN3),
                                 engine, config_hash="test")
    result = await decoder.generate(REQUEST)

    assert result.status == "failed" and result.failure_reason.startswith("context_exhausted")
    assert "student model's context (4096 tokens)" in result.failure_reason
    assert "max_answer_tokens 512" in result.failure_reason
    assert result.attempts == 1  # no retry that cannot succeed
    assert student.clamped == []
    # The thinking request left exactly the answer's room: the opener's tokens and its whole budget.
    answer_open = student.count_tokens(QWEN3.markers.answer_open)
    assert student.requests[0]["max_tokens"] == 4096 - _prompt_tokens(student) - 512 - answer_open
    assert not any(request["answer"] for request in student.requests)


async def test_a_trace_that_ends_within_the_room_gets_its_whole_answer_budget():
    # The model thinks 3,000 words then closes its thinking: the answer's 512 tokens still fit.
    student = ClampingBackend("student", 4096, answer_marker="\n</think>\n\n", answer_words=400, think_words=3000)
    engine = EngineConfig(mode=Mode.student_only, max_thinking_tokens=3800, max_answer_tokens=512)
    decoder = CooperativeDecoder(_participant(Role.teacher, ScriptedBackend("t", []), HARMONY),
                                 _participant(Role.student, student, QWEN3), engine, config_hash="test")
    result = await decoder.generate(REQUEST)
    assert result.ok, result.failure_reason
    assert len(result.thinking.split()) == 3000 and len(result.answer.split()) == 400
    assert student.clamped == []
    assert student.requests[-1]["answer"] and student.requests[-1]["max_tokens"] == 512


async def test_interleaved_spans_shrink_to_the_room_left_and_the_sample_ends_once():
    # Teacher and student take turns; the student (who answers) has the smaller context.
    teacher = ClampingBackend("teacher", 8192, answer_marker="<|channel|>final<|message|>", word="compute")
    student = ClampingBackend("student", 600, answer_marker="\n</think>\n\n", word="Okay,")
    decoder = CooperativeDecoder(
        _participant(Role.teacher, teacher, HARMONY, LexiconPredictor(["Okay,"]), span_tokens=10),
        _participant(Role.student, student, QWEN3, LexiconPredictor(["Okay,"]), span_tokens=5),
        EngineConfig(mode=Mode.tessy, max_thinking_tokens=38_000, max_answer_tokens=100, max_attempts=5,
                     span_requests="fixed", repetition_check_every=10_000),
        config_hash="test",
    )
    result = await decoder.generate(REQUEST)
    assert result.status == "failed" and result.failure_reason.startswith("context_exhausted"), result.failure_reason
    assert result.attempts == 1
    assert teacher.clamped == [] and student.clamped == []
    # The teacher writes on (the student's predictor hands over at its first capability word); its
    # spans are held to the room the student needs to read the trace and answer: the last one asked
    # for less than a full span, only what was left.
    assert [s.role for s in result.spans] == [Role.student, Role.teacher]
    assert teacher.requests[-1]["max_tokens"] < 10
    # The student's context still holds its prompt, the whole trace and the reserved answer room.
    trace_tokens = student.count_tokens(QWEN3.thinking_prompt(PROBLEM) + result.thinking)
    assert trace_tokens + 100 + student.count_tokens(QWEN3.markers.answer_open) <= 600


async def test_an_answer_that_finds_less_room_than_reserved_ends_as_context_exhausted_without_retries():
    # The teacher's tokens are not the student's: a trace the teacher wrote can take more of the
    # student's context than estimated. The answer then gets what is left, and if it runs out the
    # sample ends once (never `answer_token_cap` retried five times).
    student = ClampingBackend("student", 300, answer_marker="\n</think>\n\n", answer_words=200)
    teacher = ScriptedBackend("teacher", [(" ".join(f"x{i}" for i in range(150)) + "<|end|>", "stop"),
                                          ("<|start|>assistant<|channel|>final<|message|>", "length")])
    engine = EngineConfig(mode=Mode.teacher_think, max_thinking_tokens=3800, max_answer_tokens=200, max_attempts=5)
    decoder = CooperativeDecoder(_participant(Role.teacher, teacher, HARMONY), _participant(Role.student, student, QWEN3),
                                 engine, config_hash="test")
    result = await decoder.generate(REQUEST)
    assert result.status == "failed" and result.failure_reason.startswith("context_exhausted"), result.failure_reason
    assert "the answer ran out" in result.failure_reason
    assert result.attempts == 1 and student.clamped == []


async def test_a_config_without_known_contexts_is_unchanged():
    student = ScriptedBackend("student", [("think think</think>", "stop"), ("answer", "stop")])
    decoder = CooperativeDecoder(_participant(Role.teacher, ScriptedBackend("t", []), HARMONY),
                                 _participant(Role.student, student, QWEN3),
                                 EngineConfig(mode=Mode.student_only), config_hash="test")
    result = await decoder.generate(REQUEST)
    assert result.ok


@pytest.mark.parametrize("pieces", [["ab", "cd ef", " gh"], ["one two", " three", "", " four five"]])
def test_the_prompt_tally_estimates_with_a_bound_and_counts_exactly_on_request(pieces):
    count = lambda text: len(text.split())  # noqa: E731 - "ab" + "cd" merge into one word, as tokens do
    tally = PromptTally(count)
    text = ""
    for piece in pieces:
        text += piece
        tokens, error = tally.count(text)
        assert abs(tokens - count(text)) <= error
    assert tally.count(text, exact=True) == (count(text), 0)
    # A prompt that is not a continuation (a new attempt) is counted from scratch.
    assert tally.count("fresh start") == (2, 0)

"""Streamed span requests and the two schedules (independent vs lock-step rounds), on scripted
backends: narrow tests of the loop's logic. The real-server proof is tests/workers/test_vllm_servers.py."""

from __future__ import annotations

import asyncio
import time

from tessy_core.chat import ChatFormat
from tessy_core.config import FAMILY_MARKERS, EngineConfig, Mode, ModelFamily, SamplingConfig
from tessy_core.engine import CooperativeDecoder, Participant, Role, SampleRequest, SpanEnd, run_samples, run_samples_lockstep
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.scripted import FINAL_HEADER, ScriptedBackend, StreamingScriptedBackend

STUDENT_STYLE = ["Okay,", "Okay, so", "Hmm,", "so"]
TEACHER_STYLE = ["Thus", "Now"]
REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem="Sum the list.")


def _format(family: ModelFamily, tag: str) -> ChatFormat:
    return ChatFormat(lambda problem: f"[{tag}]{problem}[/{tag}]", FAMILY_MARKERS[family])


def _decoder(teacher_backend, student_backend, mode=Mode.tessy, **engine) -> CooperativeDecoder:
    teacher = Participant(Role.teacher, teacher_backend, _format(ModelFamily.harmony, "T"), 10, SamplingConfig(), False,
                          LexiconPredictor(TEACHER_STYLE))
    student = Participant(Role.student, student_backend, _format(ModelFamily.qwen3, "S"), 5, SamplingConfig(), False,
                          LexiconPredictor(STUDENT_STYLE))
    engine.setdefault("span_requests", "stream")  # this file is about streamed spans and schedules
    return CooperativeDecoder(teacher, student, EngineConfig(mode=mode, **engine), config_hash="test")


async def test_one_streamed_request_per_span_closed_once_the_boundary_word_is_complete():
    teacher = StreamingScriptedBackend("teacher", [
        (" we read n numbers and add them. Thus print the sum twice", "length"),
        (" the total.<|end|>", "stop"), FINAL_HEADER,
    ])
    student = StreamingScriptedBackend("student", [
        ("Okay, so the list", "length"),  # closed after " the" is followed by " list"
        (" Hmm, so we", "length"),
        ("print(sum(xs))", "stop"),
    ])
    result = await _decoder(teacher, student).generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text) for s in result.spans] == [
        (Role.student, "Okay, so"),
        (Role.teacher, " we read n numbers and add them."),
        (Role.student, " Hmm, so"),
        (Role.teacher, " the total."),
    ]
    assert [s.steps for s in result.spans] == [1, 1, 1, 1]
    assert result.spans[-1].ended_by is SpanEnd.end_of_thinking
    # The teacher's first stream was closed once "Thus" was complete: " the sum twice" never came.
    assert result.spans[1].tokens_discarded == 2 and teacher.tokens_streamed == 9 + 2


async def test_streaming_needs_fewer_requests_than_fixed_spans_for_the_same_text():
    def scripts():
        teacher = [(" we read n numbers and add all of them up. Thus print", "length"), (" it.<|end|>", "stop"), FINAL_HEADER]
        student = [("Okay, so the", "length"), (" Hmm, so we", "length"), ("answer", "stop")]
        return teacher, student

    teacher_replies, student_replies = scripts()
    streamed = await _decoder(StreamingScriptedBackend("t", teacher_replies), StreamingScriptedBackend("s", student_replies)).generate(REQUEST)

    # The same text cut into k-token requests (k=10 teacher, 5 student), as the paper does.
    fixed_teacher = ScriptedBackend("t", [(" we read n numbers and add all of", "length"),
                                          (" them up. Thus print", "length"), (" it.<|end|>", "stop"), FINAL_HEADER])
    fixed_student = ScriptedBackend("s", [("Okay, so the", "length"), (" Hmm, so we", "length"), ("answer", "stop")])
    fixed = await _decoder(fixed_teacher, fixed_student, span_requests="fixed").generate(REQUEST)

    assert streamed.ok and fixed.ok
    assert streamed.thinking == fixed.thinking
    requests = lambda r: sum(u.requests for u in r.usage.values())  # noqa: E731
    assert requests(streamed) < requests(fixed)


async def test_a_backend_without_streaming_falls_back_to_fixed_spans():
    teacher = ScriptedBackend("t", [(" we add. Thus", "length"), (" it.<|end|>", "stop"), FINAL_HEADER])
    student = ScriptedBackend("s", [("Okay, the", "length"), (" Hmm, so a", "length"), ("answer", "stop")])
    result = await _decoder(teacher, student).generate(REQUEST)
    assert result.ok and result.thinking == "Okay, we add. Hmm, so it."


class _DelayByProblem:
    """Student-only replies; requests of problem 'slow' take 0.15 s. Logs (problem, start, end)."""

    def __init__(self):
        self.log: list[tuple[str, float, float]] = []

    @property
    def model_id(self) -> str:
        return "delay"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def complete(self, prompt, *, max_tokens, sampling, stop=(), affinity_key=None):
        from tessy_core.backends.base import Completion

        problem = "slow" if "slow" in prompt else "fast"
        start = time.perf_counter()
        await asyncio.sleep(0.15 if problem == "slow" else 0.0)
        self.log.append((problem, start, time.perf_counter()))
        return Completion("words here", 2, "stop")

    async def score(self, prompt, continuation, *, affinity_key=None):
        raise NotImplementedError

    async def aclose(self):
        return None


def _student_only(backend) -> CooperativeDecoder:
    participant = lambda role: Participant(role, backend, _format(ModelFamily.qwen3, role.value), 5, SamplingConfig(), False)  # noqa: E731
    return CooperativeDecoder(participant(Role.teacher), participant(Role.student), EngineConfig(mode=Mode.student_only), "h")


def _requests():
    return [SampleRequest(name, name, name) for name in ("slow", "fast-1", "fast-2")]


async def test_lockstep_rounds_make_every_sample_wait_for_the_slowest_request():
    backend = _DelayByProblem()
    summary = await run_samples_lockstep(_student_only(backend), _requests(), pool_size=3)
    assert summary.samples_ok == 3 and summary.rounds == 2  # thinking, then answer
    slow_first_end = next(end for problem, _, end in backend.log if problem == "slow")
    fast_second_starts = [start for problem, start, _ in backend.log if problem == "fast"][2:]
    assert len(fast_second_starts) == 2 and min(fast_second_starts) >= slow_first_end


async def test_independent_schedule_lets_fast_samples_finish_first():
    backend = _DelayByProblem()
    finished: list[str] = []
    await run_samples(_student_only(backend), _requests(), concurrency=3, on_result=lambda r: finished.append(r.sample_id))
    assert finished[-1] == "slow"
    slow_first_end = next(end for problem, _, end in backend.log if problem == "slow")
    assert max(start for problem, start, _ in backend.log if problem == "fast") < slow_first_end


async def test_lockstep_refills_the_pool_and_accounts_for_every_sample():
    backend = _DelayByProblem()
    requests = [SampleRequest(f"s{i}", f"s{i}", f"fast {i}") for i in range(5)]
    seen: list[str] = []
    summary = await run_samples_lockstep(_student_only(backend), requests, pool_size=2, on_result=lambda r: seen.append(r.sample_id))
    assert sorted(seen) == [f"s{i}" for i in range(5)] and summary.samples_ok == 5

"""Where a harmony teacher's thinking ends, from replayed raw outputs (special tokens and all).

In harmony `<|end|>` closes one message; the thinking ends when the model opens the `final`
channel. A second analysis message continues the thinking; a server that strips special tokens
shows `...assistantfinal...` and the sample must fail, never be published.
"""

from __future__ import annotations

import pytest

from tessy_core.chat import chat_format_for
from tessy_core.config import EngineConfig, Mode, ModelConfig, SamplingConfig
from tessy_core.engine import CooperativeDecoder, Participant, Role, SampleRequest, SpanEnd
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.replay import RawReplayBackend
from tests.engine.scripted import ScriptedBackend, StreamingScriptedBackend
from tests.family_fixtures import build_family_tokenizer

PROBLEM = "Read a line of integers and print their sum."
FINAL = "<|start|>assistant<|channel|>final<|message|>"
ANALYSIS = "<|start|>assistant<|channel|>analysis<|message|>"
T1 = "We need to read the numbers and add them. Use sum of map int."
T2 = "Check: empty line? Input has at least one number. Good."
ANSWER = "```python\nprint(sum(map(int, input().split())))\n```"


@pytest.fixture(scope="module")
def harmony():
    tokenizer = build_family_tokenizer("harmony")
    model = ModelConfig(name="teacher", path="/unused", family="harmony", backend="transformers")
    return tokenizer, chat_format_for(model, tokenizer)


@pytest.fixture(scope="module")
def qwen3():
    tokenizer = build_family_tokenizer("qwen3")
    model = ModelConfig(name="student", path="/unused", family="qwen3", backend="transformers")
    return tokenizer, chat_format_for(model, tokenizer)


def _decoder(harmony, qwen3, raw: str, student_replies, mode=Mode.teacher_think, *, stripped=False, teacher_replies=None):
    tokenizer, teacher_chat = harmony
    if teacher_replies is None:
        teacher_backend = RawReplayBackend(
            "teacher", tokenizer, teacher_chat.thinking_prompt(PROBLEM), raw, skip_special_tokens=stripped
        )
    else:
        teacher_backend = teacher_replies
    teacher = Participant(Role.teacher, teacher_backend, teacher_chat, span_tokens=10, sampling=SamplingConfig(),
                          send_seed=False, predictor=LexiconPredictor(["Thus", "Check:"]))
    student = Participant(Role.student, ScriptedBackend("student", student_replies), qwen3[1], span_tokens=5,
                          sampling=SamplingConfig(), send_seed=False, predictor=LexiconPredictor(["Okay,", "Hmm,"]))
    engine = EngineConfig(mode=mode, max_thinking_tokens=2000, max_answer_tokens=200, max_attempts=3)
    return CooperativeDecoder(teacher, student, engine, config_hash="test")


REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem=PROBLEM)


async def test_the_analysis_message_ends_the_thinking_when_the_final_channel_opens(harmony, qwen3):
    raw = f"{T1}<|end|>{FINAL}{ANSWER}<|return|>"
    decoder = _decoder(harmony, qwen3, raw, [(ANSWER, "stop")])
    result = await decoder.generate(REQUEST)
    assert result.ok, result.failure_reason
    assert result.thinking == T1 and result.answer == ANSWER
    teacher = decoder.participants[Role.teacher].backend
    # One request for the thinking, one for the header of the next message (final: the end).
    assert len(teacher.requests) == 2
    assert teacher.requests[1]["prompt"].endswith(T1 + "<|end|>")
    assert result.usage[Role.teacher].requests == 2
    # The student answered from the whole thinking, in its own format.
    student_prompt = decoder.participants[Role.student].backend.prompts[-1]
    assert student_prompt.endswith("<think>\n" + T1 + "\n</think>\n\n")


async def test_a_second_analysis_message_continues_the_thinking(harmony, qwen3):
    raw = f"{T1}<|end|>{ANALYSIS}{T2}<|end|>{FINAL}{ANSWER}<|return|>"
    decoder = _decoder(harmony, qwen3, raw, [(ANSWER, "stop")])
    result = await decoder.generate(REQUEST)
    assert result.ok, result.failure_reason
    # Not cut short at the first <|end|>: both messages, joined by the separator, no headers.
    assert result.thinking == T1 + "\n\n" + T2
    assert "<|" not in result.thinking and "assistant" not in result.thinking
    assert [s.ended_by for s in result.spans] == [SpanEnd.single_writer] and result.spans[0].role is Role.teacher
    teacher = decoder.participants[Role.teacher].backend
    prompts = [r["prompt"] for r in teacher.requests]
    # thinking, header (analysis: go on), thinking continued after the separator, header (final: end)
    assert len(prompts) == 4
    assert prompts[2].endswith(T1 + "\n\n") and prompts[3].endswith(T2 + "<|end|>")
    assert decoder.participants[Role.student].backend.prompts[-1].endswith(T1 + "\n\n" + T2 + "\n</think>\n\n")


async def test_the_teacher_answers_after_all_its_analysis_messages(harmony, qwen3):
    raw = f"{T1}<|end|>{ANALYSIS}{T2}<|end|>{FINAL}{ANSWER}<|return|>"
    decoder = _decoder(harmony, qwen3, raw, [], mode=Mode.teacher_only)
    result = await decoder.generate(REQUEST)
    assert result.ok, result.failure_reason
    assert result.thinking == T1 + "\n\n" + T2 and result.answer == ANSWER
    answer_prompt = decoder.participants[Role.teacher].backend.requests[-1]["prompt"]
    assert answer_prompt.endswith(T1 + "\n\n" + T2 + "<|end|>" + FINAL)


async def test_stripped_special_tokens_fail_the_sample_once_with_a_clear_reason(harmony, qwen3):
    raw = f"{T1}<|end|>{FINAL}{ANSWER}<|return|>"
    decoder = _decoder(harmony, qwen3, raw, [(ANSWER, "stop")], stripped=True)
    result = await decoder.generate(REQUEST)
    assert result.status == "failed"
    assert result.failure_reason.startswith("special_tokens_stripped")
    assert "assistantfinal" in result.failure_reason and "skip_special_tokens" in result.failure_reason
    assert result.attempts == 1 and len(result.attempt_failures) == 1  # no retry: every one would fail alike
    assert result.assistant == "" and decoder.participants[Role.student].backend.prompts == []


async def test_stripped_tokens_in_an_interleaved_stream_fail_the_sample(harmony, qwen3):
    teacher = StreamingScriptedBackend("teacher", [(" we add them.assistantfinalprint(1)", "stop")])
    decoder = _decoder(harmony, qwen3, "", [("Okay, so", "length")], mode=Mode.tessy, teacher_replies=teacher)
    result = await decoder.generate(REQUEST)
    assert result.status == "failed" and result.failure_reason.startswith("special_tokens_stripped")
    assert result.attempts == 1


async def test_a_qwen3_thinker_ends_at_its_marker_without_asking_for_a_header(harmony, qwen3):
    decoder = _decoder(harmony, qwen3, "", [("Okay, so we add them all.</think>", "stop"), (ANSWER, "stop")],
                       mode=Mode.student_only)
    result = await decoder.generate(REQUEST)
    assert result.ok and result.thinking == "Okay, so we add them all."
    assert result.usage[Role.student].requests == 2  # thinking, answer

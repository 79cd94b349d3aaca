"""`span_requests: stops` on scripted backends: the server ends spans at the predictor's handover
stop strings, the predictor confirms or overrides, and a span's request size is learned."""

from __future__ import annotations

from collections import deque

from tessy_core.chat import ChatFormat
from tessy_core.config import FAMILY_MARKERS, EngineConfig, ModelFamily, SamplingConfig
from tessy_core.engine import CooperativeDecoder, Participant, Role, SampleRequest, SpanEnd
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.lexicon import LexiconPredictor
from tests.engine.scripted import ScriptedBackend

REQUEST = SampleRequest(sample_id="s1", prompt_id="p1", problem="Sum the list.")


class StopLexicon(LexiconPredictor):
    """A lexicon predictor with handover stops that also reads the token after a chunk: a chunk that
    ends with one of its phrases is followed by the other kind (what a learned predictor says)."""

    reads_streams = True

    def __init__(self, phrases, stops):
        super().__init__(phrases)
        self.handover_stops = tuple(stops)
        self.calls: list[dict] = []

    async def find_boundary(self, context, chunk, target, min_offset=0, *, stream=None, lookahead=False):
        self.calls.append({"chunk": chunk, "stream": stream, "lookahead": lookahead})
        found = self.find_boundary_sync(context, chunk, target, min_offset)
        if found is None and lookahead and target == TokenKind.CAPABILITY and self.style_mask(chunk)[-1:] == [True]:
            return len(chunk)
        return found


def _decoder(teacher_backend, student_backend, teacher_predictor, student_predictor) -> CooperativeDecoder:
    def fmt(family, tag):
        return ChatFormat(lambda problem: f"[{tag}]{problem}[/{tag}]", FAMILY_MARKERS[family])

    teacher = Participant(Role.teacher, teacher_backend, fmt(ModelFamily.qwen3, "T"), 10, SamplingConfig(), False, teacher_predictor)
    student = Participant(Role.student, student_backend, fmt(ModelFamily.qwen3, "S"), 5, SamplingConfig(), False, student_predictor)
    return CooperativeDecoder(teacher, student, EngineConfig(span_requests="stops"), config_hash="test")


async def test_spans_end_at_the_server_and_the_student_hands_over_after_its_phrase():
    teacher = ScriptedBackend("teacher", [
        (" we read n numbers and add them. Thus print the sum", "length"),  # the server stops at " Thus"
        (" the total is printed.</think>", "stop"),
    ])
    student = ScriptedBackend("student", [
        ("Okay, so the list", "length"),  # the server stops at "Okay, so"
        (" Hmm, so we", "length"),
        ("print(sum(xs))", "stop"),
    ])
    teacher_predictor = StopLexicon(["Thus"], [" Thus"])
    student_predictor = StopLexicon(["Okay, so", "Hmm, so"], ["Okay, so", "Hmm, so"])
    result = await _decoder(teacher, student, teacher_predictor, student_predictor).generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text) for s in result.spans] == [
        (Role.student, "Okay, so"),
        (Role.teacher, " we read n numbers and add them."),
        (Role.student, " Hmm, so"),
        (Role.teacher, " the total is printed."),
    ]
    assert [s.steps for s in result.spans] == [1, 1, 1, 1]  # one request per span
    assert result.spans[-1].ended_by is SpanEnd.end_of_thinking
    # Nothing thrown away: the server stopped at the handover, the student's phrase was put back.
    assert sum(s.tokens_discarded for s in result.spans) == 0
    # The stop strings went to the server with the end-of-thinking marker, and the predictor was
    # told which trace it reads and that the student's text ended at a word end.
    assert student_predictor.calls[0] == {"chunk": "Okay, so", "stream": "s1/1/student", "lookahead": True}
    assert teacher_predictor.calls[0]["stream"] == "s1/1/teacher"


async def test_a_stop_the_predictor_overrides_keeps_the_text_and_the_model_goes_on():
    teacher = ScriptedBackend("teacher", [
        (" we read Thus the numbers", "length"),  # the server stops at " Thus"; the predictor sees no style
        (" and print them.</think>", "stop"),
    ])
    student = ScriptedBackend("student", [("Okay, so we", "length"), ("print(xs)", "stop")])
    teacher_predictor = StopLexicon(["Now"], [" Thus"])  # " Thus" is not style for this predictor
    student_predictor = StopLexicon(["Okay, so"], ["Okay, so"])
    result = await _decoder(teacher, student, teacher_predictor, student_predictor).generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text, s.steps) for s in result.spans] == [
        (Role.student, "Okay, so", 1),
        (Role.teacher, " we read Thus and print them.", 2),  # " Thus" kept: the teacher wrote it
    ]


def test_the_request_size_is_learned_from_the_spans_seen():
    decoder = _decoder(ScriptedBackend("t", []), ScriptedBackend("s", []), StopLexicon(["a"], []), StopLexicon(["a"], []))
    teacher = decoder.participants[Role.teacher]
    assert decoder._span_cap(teacher) == 40  # 4 k until spans have been seen
    decoder._span_lengths[Role.teacher] = deque([20] * 95 + [60] * 5, maxlen=512)
    assert decoder._span_cap(teacher) == 20 * 5 // 4 + 2  # the 95th percentile, a quarter on top
    decoder._span_lengths[Role.teacher] = deque([1] * 100, maxlen=512)
    assert decoder._span_cap(teacher) == 10  # never below k


async def test_a_teacher_stop_of_a_word_s_first_letters_hands_over_before_it():
    # The server stops at " Check" (of " Check:"): the predictor reads it as the first style token
    # and the teacher's span ends before it (only that one token was decoded for nothing).
    teacher = ScriptedBackend("teacher", [(" we add them. Check: the sum", "length"), (" done.</think>", "stop")])
    student = ScriptedBackend("student", [("Okay, so we", "length"), (" Check: so", "length"), ("print(sum(xs))", "stop")])
    teacher_predictor = StopLexicon(["Check"], [" Check"])
    student_predictor = StopLexicon(["Okay, so", "Check:"], ["Okay, so", "Check:"])
    result = await _decoder(teacher, student, teacher_predictor, student_predictor).generate(REQUEST)

    assert result.ok, result.failure_reason
    assert [(s.role, s.text, s.steps) for s in result.spans[:3]] == [
        (Role.student, "Okay, so", 1),
        (Role.teacher, " we add them.", 1),
        (Role.student, " Check:", 1),
    ]
    # The token after the teacher's stop tells nothing: the stop is the handover or it is not.
    assert teacher_predictor.calls[0] == {"chunk": " we add them. Check", "stream": "s1/1/teacher", "lookahead": False}

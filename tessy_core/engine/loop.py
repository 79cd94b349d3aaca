"""The cooperative decoding loop: one sample from a teacher and a student taking turns.

Pure orchestration: it talks to models only through `Backend`, to boundary predictors only through
`BoundaryPredictor`, and to storage only through the optional checkpoint callback. See
docs/engine.md for the algorithm and the meaning of every recorded figure.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tessy_core.backends.base import (
    Backend,
    BackendError,
    Completion,
    SamplingParams,
    StreamingBackend,
)
from tessy_core.chat import ChatFormat
from tessy_core.config import EngineConfig, SamplingConfig
from tessy_core.engine.guards import (
    PromptTally,
    extend_to_word_end,
    first_word_end,
    has_repetition_loop,
)
from tessy_core.engine.modes import ModePlan, Phase, mode_plan
from tessy_core.engine.records import (
    ModelUsage,
    Role,
    SampleCheckpoint,
    SampleFailed,
    SampleRequest,
    SampleResult,
    Span,
    SpanEnd,
)
from tessy_core.predictors.base import BoundaryPredictor, TokenKind

CheckpointSink = Callable[[SampleCheckpoint], Awaitable[None]]


# The kind of token that ends a role's span: the teacher hands over at style, the student at capability.
HANDOVER_KIND = {Role.teacher: TokenKind.STYLE, Role.student: TokenKind.CAPABILITY}


@dataclass(frozen=True)
class Participant:
    """One model as the loop sees it."""

    role: Role
    backend: Backend
    chat: ChatFormat
    span_tokens: int
    sampling: SamplingConfig
    send_seed: bool
    predictor: BoundaryPredictor | None = None
    # The model's context length in tokens, when known: a prompt that cannot fit fails up front.
    context_tokens: int | None = None


# Spans that must have ended before `span_requests: stops` sizes requests from their lengths.
_SPANS_BEFORE_LEARNED_CAP = 16


def _with_handover_stop(completion: Completion, stops: tuple[str, ...], role: Role) -> tuple[Completion, bool]:
    """A completion the server ended at a handover stop string, with that string put back (the
    model wrote it: the predictor decides whether it is the handover) and finish_reason
    "handover_stop" (not the end of the thinking); and whether the predictor's reading of the token
    after it counts. It does for the student, whose stop is a whole style run ending at a word end.
    The teacher's stop is the first style token itself, often a word's first letters (" Check" of
    " Check:", predictors/stops.py): the predictor hands over before it or not at all."""
    if completion.finish_reason != "stop" or completion.stop_string not in stops:
        return completion, False
    text = completion.text + completion.stop_string
    return Completion(text, completion.num_tokens, "handover_stop", completion.stop_string), role is Role.student


@dataclass
class Draft:
    """What one pass of a plan wrote: the thinking (its spans, steps and active model in `state`)
    and the answer."""

    state: SampleCheckpoint
    thinking: str = ""
    answer: str = ""


@dataclass
class _Outcome:
    thinking: str
    answer: str
    answer_role: Role
    details: dict[str, Any] = field(default_factory=dict)


class Attempt:
    """One attempt at a sample, as its plan drives it: the passes it may write and how it ends."""

    def __init__(
        self, decoder: CooperativeDecoder, request: SampleRequest, state: SampleCheckpoint, checkpoint: CheckpointSink | None
    ):
        self.decoder = decoder
        self.request = request
        self.state = state
        self._checkpoint = checkpoint
        self.outcome: _Outcome | None = None

    @property
    def engine(self) -> EngineConfig:
        return self.decoder.engine

    def own_draft(self) -> Draft:
        """The draft written on the sample's own state: checkpointed, and continued on resume."""
        return Draft(self.state, self.state.thinking)

    def side_draft(self, name: str, phase: Phase) -> Draft:
        """A draft of its own (a reference, a candidate, a judgement), never checkpointed. Its usage
        counts for the sample; its requests get their own seeds (its state is named
        `<sample id>/<name>`); its spans become the sample's only if the plan finishes with it."""
        state = SampleCheckpoint(f"{self.request.sample_id}/{name}", self.state.attempt, 0, phase.writers[0], [], self.state.usage)
        return Draft(state)

    def write(self, draft: Draft, phase: Phase, *, problem: str | None = None) -> AsyncIterator[None]:
        """Write `phase` into `draft`: thinking, then the answer. `problem`: the user message the
        models see instead of the sample's problem (the sample keeps its own). Yields after each request."""
        request = self.request if problem is None else replace(self.request, problem=problem)
        checkpoint = self._checkpoint if draft.state is self.state else None
        return self.decoder._write(request, draft, phase, checkpoint)

    def finish(self, draft: Draft, answer_role: Role, **details: Any) -> None:
        """The sample is `draft`'s thinking and answer; `details` go to the record's `mode_details`."""
        if draft.state is not self.state:
            self.state.spans = draft.state.spans
        self.outcome = _Outcome(draft.thinking, draft.answer, answer_role, details)


class CooperativeDecoder:
    """Turns (problem, sample index) into one training sample, in any `Mode`."""

    def __init__(self, teacher: Participant, student: Participant, engine: EngineConfig, config_hash: str):
        self.participants = {Role.teacher: teacher, Role.student: student}
        self.engine = engine
        self.mode = engine.mode
        self.plan = mode_plan(self.mode)
        if self.plan.interleaved and not (teacher.predictor and student.predictor):
            raise ValueError("interleaved thinking needs a boundary predictor for each model")
        # Lengths (tokens kept) of the spans that ended lately, per model: `stops` sizes requests by them.
        self._span_lengths: dict[Role, deque[int]] = {role: deque(maxlen=512) for role in Role}
        self.identities = {
            "teacher_model": teacher.backend.model_id,
            "student_model": student.backend.model_id,
            "teacher_predictor": teacher.predictor.identity if teacher.predictor else "",
            "student_predictor": student.predictor.identity if student.predictor else "",
            "config_hash": config_hash,
        }

    async def generate(
        self,
        request: SampleRequest,
        *,
        resume: SampleCheckpoint | None = None,
        checkpoint: CheckpointSink | None = None,
    ) -> SampleResult:
        """Generate one sample, retrying from scratch on failure; never raises for a bad sample."""
        run = self.start(request, resume=resume, checkpoint=checkpoint)
        while not await run.advance():
            pass
        return run.result

    def start(
        self,
        request: SampleRequest,
        *,
        resume: SampleCheckpoint | None = None,
        checkpoint: CheckpointSink | None = None,
    ) -> SampleRun:
        """A sample that advances one model request at a time (see `SampleRun`)."""
        return SampleRun(self, request, resume, checkpoint)

    async def _run(
        self, request: SampleRequest, resume: SampleCheckpoint | None, checkpoint: CheckpointSink | None, run: SampleRun
    ) -> AsyncIterator[None]:
        """Yields after every model request; leaves the finished sample in `run.result`."""
        started = time.perf_counter()
        plan = self.plan.for_sample(request, self.engine)
        state = resume or self._fresh_state(request, plan, attempt=1, failures=[], usage=None)
        too_long = self._prompt_too_long(request, plan)
        if too_long is not None:
            # Every attempt would fail the same way: no retries, no requests.
            state.attempt_failures.append(too_long)
            run.result = self._result(request, plan, state, "failed", too_long, started, _Outcome("", "", plan.answer_role))
            return
        while True:
            final = False
            attempt = Attempt(self, request, state, checkpoint)
            try:
                async for _ in plan.attempt(attempt):
                    yield
                if attempt.outcome is None:
                    raise RuntimeError(f"mode {plan.name!r}: an attempt ended without finishing the sample")
                run.result = self._result(request, plan, state, "ok", None, started, attempt.outcome)
                return
            except SampleFailed as failure:
                detail, final = str(failure), failure.final
            except BackendError as failure:
                detail = f"backend_error: {failure}"
            state.attempt_failures.append(detail)
            if final or state.attempt >= self.engine.max_attempts:
                run.result = self._result(request, plan, state, "failed", detail, started)
                return
            state = self._fresh_state(request, plan, state.attempt + 1, state.attempt_failures, state.usage)

    def _prompt_too_long(self, request: SampleRequest, plan: ModePlan) -> str | None:
        """Why the problem cannot fit the context of a model that must read it, if it cannot: its
        prompt plus room for one span (writers) or for the answer must be within the context."""
        writers, answer_role = plan.opening.writers, plan.opening.answer_role
        for role in dict.fromkeys((*writers, answer_role)):
            participant = self.participants[role]
            if participant.context_tokens is None:
                continue
            prompt_tokens = participant.backend.count_tokens(participant.chat.thinking_prompt(request.problem))
            room = self.engine.max_answer_tokens if role is answer_role and role not in writers else participant.span_tokens
            if prompt_tokens + room > participant.context_tokens:
                return (
                    f"prompt_too_long: the {role.value} model's prompt has {prompt_tokens} tokens, and with "
                    f"{room} to write it exceeds its context of {participant.context_tokens} tokens"
                )
        return None

    @staticmethod
    def _fresh_state(request: SampleRequest, plan: ModePlan, attempt: int, failures: list[str], usage) -> SampleCheckpoint:
        return SampleCheckpoint(
            sample_id=request.sample_id,
            attempt=attempt,
            steps=0,
            active=plan.opening.writers[0],
            spans=[],
            usage=usage or {role: ModelUsage() for role in Role},
            attempt_failures=failures,
        )

    async def _write(
        self, request: SampleRequest, draft: Draft, phase: Phase, checkpoint: CheckpointSink | None
    ) -> AsyncIterator[None]:
        """One pass (see `Attempt.write`): yields after each request and fills `draft`."""
        state = draft.state
        interleaved = phase.interleaved
        thinking = draft.thinking
        # Each model's prompt length, counted as the trace grows (exactly near the context's end).
        tallies = {role: PromptTally(p.backend.count_tokens) for role, p in self.participants.items()}
        try:
            while True:
                participant = self.participants[state.active]
                thinking_tokens = sum(s.tokens_kept for s in state.spans)
                budget = self.engine.max_thinking_tokens - thinking_tokens
                if budget <= 0:
                    raise SampleFailed("thinking_token_cap", f"thinking exceeded {self.engine.max_thinking_tokens} tokens")
                wanted = budget if not interleaved else min(budget, self._span_cap(participant))
                room, full = self._thinking_room(request, participant.role, phase.answer_role, thinking, tallies, wanted)
                if room is not None and room <= 0:
                    raise SampleFailed("context_exhausted", full, final=True)
                limit = budget if room is None else min(budget, room)
                completion, cut = await self._span_request(request, state, participant, thinking, limit, interleaved)
                state.steps += 1
                self._check_stripped(participant, completion.text)
                chunk = completion.text
                kept = chunk if cut is None else chunk[:cut]
                kept_tokens = completion.num_tokens if cut is None else participant.backend.count_tokens(kept)
                usage = state.usage[participant.role]
                usage.requests += 1
                usage.tokens_generated += completion.num_tokens
                usage.tokens_kept += kept_tokens
                usage.tokens_discarded += max(completion.num_tokens - kept_tokens, 0)
                ended_by = None
                if cut is not None:
                    ended_by = SpanEnd.boundary
                elif completion.ended_turn:
                    ended_by = SpanEnd.end_of_thinking
                elif not interleaved and completion.finish_reason == "length":
                    if limit < budget:
                        _, full = self._thinking_room(request, participant.role, phase.answer_role, thinking + kept, tallies, 0)
                        raise SampleFailed("context_exhausted", full, final=True)
                    raise SampleFailed("thinking_token_cap", f"thinking exceeded {self.engine.max_thinking_tokens} tokens")
                generated = completion.num_tokens
                if ended_by is SpanEnd.end_of_thinking and await self._next_message_continues(
                    request, state, participant, thinking + kept, completion
                ):
                    # Another message of thinking (harmony analysis): the thinking goes on, its header
                    # replaced by a separator in the shared trace.
                    separator = participant.chat.markers.message_separator
                    kept += separator
                    separator_tokens = participant.backend.count_tokens(separator)
                    kept_tokens += separator_tokens
                    generated += separator_tokens
                    ended_by = None
                self._append(state, participant.role, kept, kept_tokens, generated, ended_by)
                thinking += kept

                if state.steps % self.engine.repetition_check_every == 0 or ended_by is SpanEnd.end_of_thinking:
                    self._check_repetition(thinking)
                if ended_by is SpanEnd.end_of_thinking and not self._student_closes(participant.role, phase):
                    break
                if ended_by is SpanEnd.boundary and self._closing(state, participant.role):
                    break  # the student's closing words ended at its first capability token
                if ended_by is not None:
                    state.active = participant.role.other
                if checkpoint is not None and state.steps % self.engine.checkpoint_every == 0:
                    await checkpoint(state)
                yield
        finally:
            # The predictors' readings of this trace are not needed again once its thinking
            # ended or the attempt failed (not at a harmony `<|end|>` the thinking continues
            # after, nor at the teacher's end the student then closes).
            if interleaved:
                self._release_streams(state)
        if not interleaved and state.spans:
            state.spans[-1].ended_by = SpanEnd.single_writer
        draft.thinking = thinking
        yield
        draft.answer = await self._answer(request, state, thinking, phase.answer_role)

    def _student_closes(self, role: Role, phase: Phase) -> bool:
        """Whether the teacher's end of thinking, just appended, hands the student its closing span."""
        return self.engine.after_teacher_ends == "student_closes" and role is Role.teacher and phase.interleaved

    @staticmethod
    def _closing(state: SampleCheckpoint, role: Role) -> bool:
        """Whether `role`'s span is the student's closing span: it follows the teacher's end of
        thinking (read from the spans, so a resumed sample knows it too)."""
        return role is Role.student and any(
            span.role is Role.teacher and span.ended_by is SpanEnd.end_of_thinking for span in state.spans
        )

    def _span_cap(self, participant: Participant) -> int:
        """The most tokens one interleaved span request may ask for."""
        if self.engine.span_requests == "stops":
            return self._learned_span_cap(participant)
        if self.engine.span_requests == "fixed" or not isinstance(participant.backend, StreamingBackend):
            return participant.span_tokens
        return self.engine.stream_max_tokens

    def _learned_span_cap(self, participant: Participant) -> int:
        """`stops`: a span request's size from the spans this decoder has seen end (per model): the
        95th percentile of their lengths with a quarter on top, so most spans take one request
        while a span whose handover the server cannot see wastes a bounded number of tokens."""
        seen = self._span_lengths[participant.role]
        ceiling = self.engine.stream_max_tokens
        if len(seen) < _SPANS_BEFORE_LEARNED_CAP:
            return min(4 * participant.span_tokens, ceiling)
        ordered = sorted(seen)
        high = ordered[int(0.95 * (len(ordered) - 1))]
        return max(participant.span_tokens, min(ceiling, math.ceil(high * 1.25) + 2))

    def _answer_reserve(self, participant: Participant) -> int:
        """Tokens the answer writer keeps free in its context: the answer's opener and its budget."""
        return self.engine.max_answer_tokens + participant.backend.count_tokens(participant.chat.markers.answer_open)

    def _thinking_room(
        self,
        request: SampleRequest,
        writer: Role,
        answer_role: Role,
        thinking: str,
        tallies: dict[Role, PromptTally],
        wanted: int,
    ) -> tuple[int | None, str]:
        """How many more tokens the trace may grow before a model that must read it runs out of
        context: the writer itself, and the answer writer, who keeps room for the whole answer.
        None when no context is known. The answer writer's room is in its own tokens, which bounds
        another writer's tokens only roughly (the trace is checked again before every request).
        Also says, for a sample that must end, which context is full and why."""
        tightest: tuple[int, str] | None = None
        for role in dict.fromkeys((writer, answer_role)):
            participant = self.participants[role]
            if participant.context_tokens is None:
                continue
            reserve = self._answer_reserve(participant) if role is answer_role else 0
            prompt = participant.chat.thinking_prompt(request.problem) + thinking
            tokens, error = tallies[role].count(prompt)
            room = participant.context_tokens - tokens - reserve - error
            if error and room <= wanted:
                # Close to the limit: count exactly, no estimate.
                tokens, _ = tallies[role].count(prompt, exact=True)
                room = participant.context_tokens - tokens - reserve
            if tightest is None or room < tightest[0]:
                kept_free = (
                    f", and {reserve} are kept for the answer (max_answer_tokens {self.engine.max_answer_tokens} "
                    "and its opener)" if reserve else ""
                )
                tightest = (
                    room,
                    (
                        f"the {role.value} model's context ({participant.context_tokens} tokens) is full: its prompt "
                        f"and the thinking so far take {tokens} tokens{kept_free}"
                    ),
                )
        return (None, "") if tightest is None else tightest

    async def _next_message_continues(
        self, request: SampleRequest, state: SampleCheckpoint, participant: Participant, thinking: str, completion: Completion
    ) -> bool:
        """After a model closed one message of its thinking (harmony `<|end|>`), whether its next
        message continues the thinking (another analysis message) rather than ending it (the final
        channel). Asks the model for the header of its next message: a few tokens."""
        markers = participant.chat.markers
        if not markers.message_end or not markers.continue_header or completion.stop_string != markers.message_end:
            return False
        header = markers.continue_header
        probe = await participant.backend.complete(
            participant.chat.thinking_prompt(request.problem) + thinking + markers.message_end,
            max_tokens=max(participant.backend.count_tokens(header), 1),
            sampling=self._sampling(participant, request, state, salt="next-header"),
            affinity_key=f"{request.sample_id}/{participant.role.value}",
        )
        usage = state.usage[participant.role]
        usage.requests += 1
        usage.tokens_generated += probe.num_tokens  # a header: neither kept nor cut at a boundary
        return probe.text.startswith(header)

    def _check_stripped(self, participant: Participant, text: str) -> None:
        signature = participant.chat.stripped_signature(text)
        if signature is not None:
            raise SampleFailed(
                "special_tokens_stripped",
                f"the {participant.role.value} model's text shows {signature!r} where its markers should be: the "
                "server or a proxy strips special tokens (tessy sends skip_special_tokens=false), so its thinking "
                "cannot be told from its answer",
                final=True,
            )

    async def _span_request(
        self,
        request: SampleRequest,
        state: SampleCheckpoint,
        participant: Participant,
        thinking: str,
        budget: int,
        interleaved: bool,
    ) -> tuple[Completion, int | None]:
        """One request of the active model, and where its text is cut for a handover (None: no cut;
        the chunk's length: hand over after the whole chunk)."""
        prompt = participant.chat.thinking_prompt(request.problem) + thinking
        think_end = tuple(participant.chat.markers.think_end)
        common = {
            "sampling": self._sampling(participant, request, state),
            "stop": think_end,
            "affinity_key": f"{request.sample_id}/{participant.role.value}",
        }
        if not interleaved:
            return await participant.backend.complete(prompt, max_tokens=budget, **common), None
        backend = participant.backend
        last = state.spans[-1] if state.spans else None
        continuing = last is not None and last.role is participant.role and last.ended_by is None
        cut_kwargs = {"stream": _stream_key(state, participant.role)}
        mode = self.engine.span_requests
        if mode == "fixed" or (mode == "stream" and not isinstance(backend, StreamingBackend)):
            completion = await backend.complete(prompt, max_tokens=min(participant.span_tokens, budget), **common)
            cut = await self._handover_cut(participant, thinking, completion.text, continuing, **cut_kwargs)
            return self._span_done(participant, state, continuing, completion, cut)

        # The predictor's handover stop strings end most spans at the server (predictors/stops.py).
        stops = tuple(s for s in getattr(participant.predictor, "handover_stops", ()) if s not in think_end)
        common["stop"] = think_end + stops
        if mode == "stops":
            completion = await backend.complete(prompt, max_tokens=min(self._span_cap(participant), budget), **common)
            completion, lookahead = _with_handover_stop(completion, stops, participant.role)
            cut = await self._handover_cut(
                participant, thinking, completion.text, continuing, lookahead=lookahead, **cut_kwargs
            )
            return self._span_done(participant, state, continuing, completion, cut)

        found: list[int] = []
        checked_upto = -1

        async def watch(text: str) -> bool:
            # The predictor sees complete words only: a word still being written may turn out to be
            # part of a phrase of the other kind ("Ok" before "Okay,").
            nonlocal checked_upto
            last_space = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
            if last_space <= checked_upto:
                return False
            checked_upto = last_space
            # text[:last_space] ends at a word end: the predictor's reading of the next token counts.
            cut = await self._handover_cut(
                participant, thinking, text[:last_space], continuing, lookahead=True, **cut_kwargs
            )
            if cut is None:
                return False
            found.append(cut)
            return True

        completion = await backend.complete_watched(
            prompt, max_tokens=min(self.engine.stream_max_tokens, budget), watch=watch, **common
        )
        if completion.finish_reason == "closed":
            return self._span_done(participant, state, continuing, completion, found[-1])
        # The last word was never shown to the predictor.
        completion, lookahead = _with_handover_stop(completion, stops, participant.role)
        cut = await self._handover_cut(participant, thinking, completion.text, continuing, lookahead=lookahead, **cut_kwargs)
        return self._span_done(participant, state, continuing, completion, cut)

    def _span_done(
        self,
        participant: Participant,
        state: SampleCheckpoint,
        continuing: bool,
        completion: Completion,
        cut: int | None,
    ) -> tuple[Completion, int | None]:
        """Bookkeeping after a span request: the length of a span that ended (for `stops`' learned
        request size)."""
        if cut is not None or completion.ended_turn:
            last = state.spans[-1] if continuing else None
            kept = completion.num_tokens if cut is None else participant.backend.count_tokens(completion.text[:cut])
            self._span_lengths[participant.role].append((last.tokens_kept if last else 0) + kept)
        return completion, cut

    def _release_streams(self, state: SampleCheckpoint) -> None:
        for role in Role:
            release = getattr(self.participants[role].predictor, "release", None)
            if release is not None:
                release(_stream_key(state, role))

    async def _handover_cut(
        self,
        participant: Participant,
        thinking: str,
        chunk: str,
        continuing: bool,
        *,
        lookahead: bool = False,
        stream: str | None = None,
    ) -> int | None:
        """Where to cut the chunk so the other model takes over, or None to keep it whole.

        A model that just took over keeps at least its first word, so every span advances the trace.
        A model continuing its own span has advanced already: its chunk may be cut anywhere, even
        before its first word (a teacher chunk that opens with "Thus" hands over at once).
        `lookahead` (the chunk ends at a word end): a predictor that reads the kind of the token
        after the chunk may hand over at the chunk's end; the result is then `len(chunk)`.
        `stream` names the trace for predictors that keep their reading between calls.
        """
        if not chunk.strip():
            return None
        predictor = participant.predictor
        extra = {}
        if getattr(predictor, "reads_streams", False):
            extra = {"stream": stream, "lookahead": lookahead}
        boundary = await predictor.find_boundary(
            thinking, chunk, HANDOVER_KIND[participant.role], min_offset=0 if continuing else first_word_end(chunk), **extra
        )
        if boundary is None:
            return None
        if boundary >= len(chunk):
            return len(chunk) if lookahead else None
        cut = extend_to_word_end(chunk, boundary)
        return cut if cut < len(chunk) else None

    @staticmethod
    def _append(state: SampleCheckpoint, role: Role, text: str, kept: int, generated: int, ended_by: SpanEnd | None) -> None:
        """Extend the open span of `role`, or open a new one after a switch."""
        last = state.spans[-1] if state.spans else None
        if last is not None and last.role is role and last.ended_by is None:
            last.text += text
            last.end += len(text)
            last.steps += 1
            last.tokens_kept += kept
            last.tokens_discarded += max(generated - kept, 0)
            last.ended_by = ended_by
            return
        start = last.end if last else 0
        state.spans.append(
            Span(role, text, start, start + len(text), 1, kept, max(generated - kept, 0), ended_by)
        )

    def _check_repetition(self, thinking: str) -> None:
        engine = self.engine
        if has_repetition_loop(
            thinking,
            min_words=engine.repetition_ngram_min,
            max_words=engine.repetition_ngram_max,
            repeats=engine.repetition_repeats,
        ):
            raise SampleFailed("repetition", f"an n-gram repeated {engine.repetition_repeats}+ times in a row")

    async def _answer(self, request: SampleRequest, state: SampleCheckpoint, thinking: str, role: Role) -> str:
        writer = self.participants[role]
        prompt = writer.chat.answer_prompt(request.problem, thinking)
        max_tokens = self.engine.max_answer_tokens
        context = writer.context_tokens
        if context is not None:
            # The thinking was held to leave this room; a cross-tokenizer estimate may have missed.
            prompt_tokens = writer.backend.count_tokens(prompt)
            if prompt_tokens >= context:
                raise SampleFailed(
                    "context_exhausted",
                    f"the {role.value} model's answer prompt takes {prompt_tokens} tokens of its {context}-token context",
                    final=True,
                )
            max_tokens = min(max_tokens, context - prompt_tokens)
        completion = await writer.backend.complete(
            prompt,
            max_tokens=max_tokens,
            sampling=self._sampling(writer, request, state, salt="answer"),
            affinity_key=f"{request.sample_id}/{role.value}",
        )
        usage = state.usage[role]
        usage.requests += 1
        usage.tokens_generated += completion.num_tokens
        usage.tokens_kept += completion.num_tokens
        if not completion.ended_turn:
            if max_tokens < self.engine.max_answer_tokens:
                raise SampleFailed(
                    "context_exhausted",
                    f"the answer ran out of the {role.value} model's context ({context} tokens) after {max_tokens} tokens",
                    final=True,
                )
            raise SampleFailed("answer_token_cap", f"the answer exceeded {self.engine.max_answer_tokens} tokens")
        if not completion.text.strip():
            raise SampleFailed("empty_answer", "the final answer is empty")
        return completion.text.strip()

    def _sampling(self, participant: Participant, request: SampleRequest, state: SampleCheckpoint, salt: str = "") -> SamplingParams:
        seed = None
        if participant.send_seed:
            key = f"{self.engine.seed}/{state.sample_id}/{state.attempt}/{state.steps}/{salt}"
            seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
        cfg = participant.sampling
        return SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, seed=seed)

    def _result(
        self,
        request: SampleRequest,
        plan: ModePlan,
        state: SampleCheckpoint,
        status: str,
        failure_reason: str | None,
        started: float,
        outcome: _Outcome | None = None,
    ) -> SampleResult:
        """The sample's record; without an outcome (a failed sample), the thinking it had so far."""
        if outcome is None:
            outcome = _Outcome(state.thinking, "", plan.answer_role)
        thinking, answer = outcome.thinking, outcome.answer
        details = dict(outcome.details)
        if plan is not self.plan:
            details["drawn_mode"] = plan.name
        student_chat = self.participants[Role.student].chat
        return SampleResult(
            sample_id=request.sample_id,
            prompt_id=request.prompt_id,
            sample_index=request.sample_index,
            mode=self.mode.value,
            status=status,
            failure_reason=failure_reason,
            problem=request.problem,
            thinking=thinking,
            answer=answer,
            assistant=student_chat.assistant_text(thinking, answer) if status == "ok" else "",
            answer_role=outcome.answer_role,
            spans=state.spans,
            usage=state.usage,
            attempts=state.attempt,
            attempt_failures=state.attempt_failures,
            wall_s=time.perf_counter() - started,
            identities=dict(self.identities),
            mode_details=details,
        )


class SampleRun:
    """One sample in progress. Each `advance()` performs one model request (a step); schedulers
    decide how samples interleave: independently (`runner.run_samples`) or in lock-step rounds
    (`runner.run_samples_lockstep`)."""

    def __init__(
        self,
        decoder: CooperativeDecoder,
        request: SampleRequest,
        resume: SampleCheckpoint | None,
        checkpoint: CheckpointSink | None,
    ):
        self.request = request
        self.result: SampleResult | None = None
        self._steps = decoder._run(request, resume, checkpoint, self)

    async def advance(self) -> bool:
        """Run up to the next request boundary; True once the sample is finished (see `result`)."""
        if self.result is not None:
            return True
        try:
            await anext(self._steps)
        except StopAsyncIteration:
            return True
        return False


def _stream_key(state: SampleCheckpoint, role: Role) -> str:
    """The name under which a predictor keeps its reading of one model's side of one trace."""
    return f"{state.sample_id}/{state.attempt}/{role.value}"

"""The style-score stage of a shard: each generated row is scored by the student as it is staged.

Per row: the student's NLL of the assistant text and the style-token rate of the thinking (the
student's boundary predictor); for the rows of a sampled subset of prompts, the student's own
response to the prompt (its reference, for the TF-IDF similarity the quality gate computes). The
figures are fields of the staged row (`tessy_core.rows.StagedSample`), so a finished sample keeps
its score and a killed shard resumes like generation. `tessy_core.quality.style` judges them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tessy_core.backends.base import Backend
from tessy_core.chat import ChatFormat
from tessy_core.predictors.base import BoundaryPredictor, TokenKind
from tessy_core.quality.style import (
    SampleStyle,
    StyleGate,
    StyleReport,
    Tokenize,
    judge_style,
    sampled,
    teacher_token_share,
    with_similarities,
)


async def style_runs(predictor: BoundaryPredictor, text: str, window_chars: int = 256) -> list[tuple[int, int, TokenKind]]:
    """`text` cut into alternating runs of style and capability, as the predictor sees it.

    Uses only the `BoundaryPredictor` protocol (any predictor works): from each switch point it asks
    where the other kind begins, reading at most `window_chars` of new text per call (learned
    predictors see a bounded token window). A boundary in the last half of a window that does not
    reach the end of the text is not trusted (the window may cut a word or phrase): the next window
    starts at that half and finds it again with the whole word in view.
    """
    if not text:
        return []
    window_chars = max(window_chars, 2)
    trusted = window_chars - window_chars // 2
    first = await predictor.find_boundary("", text[:window_chars], TokenKind.STYLE, 0)
    kind = TokenKind.STYLE if first == 0 else TokenKind.CAPABILITY
    runs: list[tuple[int, int, TokenKind]] = []
    start = position = 0
    while position < len(text):
        other = TokenKind.CAPABILITY if kind is TokenKind.STYLE else TokenKind.STYLE
        window = text[position : position + window_chars]
        reaches_end = position + len(window) >= len(text)
        # A run is at least one character long, so every call advances.
        min_offset = 1 if position == start else 0
        boundary = await predictor.find_boundary(text[:position], window, other, min_offset)
        if boundary is None or (boundary > trusted and not reaches_end):
            position = len(text) if reaches_end else position + trusted
            continue
        runs.append((start, position + boundary, kind))
        start = position = position + boundary
        kind = other
    runs.append((start, len(text), kind))
    return [run for run in runs if run[1] > run[0]]


async def style_token_rate(predictor: BoundaryPredictor, text: str, count_tokens: Callable[[str], int],
                           window_chars: int = 256) -> float | None:
    """Share of `text`'s tokens (under `count_tokens`, the student's tokenizer) in style runs."""
    runs = await style_runs(predictor, text, window_chars)
    counts = [(count_tokens(text[start:end]), kind) for start, end, kind in runs]
    total = sum(count for count, _ in counts)
    return sum(count for count, kind in counts if kind is TokenKind.STYLE) / total if total else None


async def student_nll(backend: Backend, chat_format: ChatFormat, problem: str, assistant: str) -> tuple[float, int]:
    """Mean per-token NLL (and token count) of `assistant` after the student's own prompt for `problem`."""
    prompt = chat_format.thinking_prompt(problem)
    opener = chat_format.markers.think_open
    continuation = assistant.removeprefix(opener)
    scores = await backend.score(prompt, continuation)
    return scores.mean_nll, len(scores.logprobs)


async def student_references(decoder, problems: Mapping[str, str], concurrency: int = 8) -> dict[str, str]:
    """The student's own assistant text for each prompt (prompt_id -> text), from a decoder in
    `student_only` mode (`tessy_core.engine.factory.open_decoder(config, Mode.student_only)`).
    Prompts whose generation failed are left out."""
    from tessy_core.engine.records import SampleRequest

    gate = asyncio.Semaphore(concurrency)

    async def one(prompt_id: str, problem: str) -> tuple[str, str | None]:
        async with gate:
            result = await decoder.generate(
                SampleRequest(sample_id=f"style-reference-{prompt_id}", prompt_id=prompt_id, problem=problem))
        return prompt_id, result.assistant if result.ok else None

    pairs = await asyncio.gather(*(one(pid, problem) for pid, problem in problems.items()))
    return {pid: text for pid, text in pairs if text}


@dataclass(frozen=True)
class StudentStyle:
    """What the style figures are measured with: the student's backend, chat format, boundary
    predictor (None: no style-token rate) and tokenizer (text -> token ids, for TF-IDF)."""

    backend: Backend
    chat_format: ChatFormat
    predictor: BoundaryPredictor | None
    tokenize: Tokenize | None = None


async def score_sample(row: Mapping[str, Any], student: StudentStyle, gate: StyleGate) -> SampleStyle:
    """The model-measured style figures of one generated sample (a staged row or an engine record)."""
    nll, tokens = await student_nll(student.backend, student.chat_format, row["problem"], row["assistant"])
    rate = None
    if student.predictor is not None and row.get("thinking"):
        rate = await style_token_rate(student.predictor, row["thinking"], student.backend.count_tokens,
                                      gate.predictor_window_chars)
    return SampleStyle(
        sample_id=str(row["sample_id"]), prompt_id=row.get("prompt_id"), mode=row.get("mode"),
        student_nll=nll if math.isfinite(nll) else None, student_tokens=tokens,
        teacher_token_share=teacher_token_share(row.get("spans")), style_token_rate=rate)


async def measure_style(rows: Sequence[Mapping[str, Any]], student: StudentStyle, gate: StyleGate,
                        references: Mapping[str, str] | None = None) -> StyleReport:
    """Score every generated sample of `rows` and judge them at once (a build scores rows on its
    shards instead, see `StyleScorer`). `references`: prompt_id -> the student's own assistant text
    (see `student_references`); prompts without one get no TF-IDF figure."""
    generated = [row for row in rows if row.get("status", "ok") == "ok" and row.get("assistant")]
    chosen = set(sampled((str(row["sample_id"]) for row in generated), gate.max_scored_samples, gate.seed))
    generated = [row for row in generated if str(row["sample_id"]) in chosen]
    limit = asyncio.Semaphore(gate.concurrency)

    async def measure(row: Mapping[str, Any]) -> SampleStyle:
        async with limit:
            return await score_sample(row, student, gate)

    samples = list(await asyncio.gather(*(measure(row) for row in generated)))
    if references:
        samples = with_similarities(samples, generated, references, student.tokenize, gate)
    return judge_style(samples, gate)


class StyleScorer:
    """Scores a shard's generated rows (see the module doc). `reference_prompts`: the prompts whose
    rows carry the student's reference; `chosen`: the sample ids to score (None: all)."""

    def __init__(self, student: StudentStyle, gate: StyleGate, reference_prompts: set[str],
                 chosen: set[str] | None, write_reference: Callable[[str, str], Any]) -> None:
        self.student = student
        self.gate = gate
        self.reference_prompts = reference_prompts
        self.chosen = chosen
        self._write_reference = write_reference
        self._references: dict[str, asyncio.Task[dict[str, str]]] = {}
        self._limit = asyncio.Semaphore(gate.concurrency)

    async def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The style fields of a staged row ({} when the row is not scored)."""
        if record.get("status") != "ok" or not record.get("assistant"):
            return {}
        if self.chosen is not None and record["sample_id"] not in self.chosen:
            return {}
        async with self._limit:
            sample = await score_sample(record, self.student, self.gate)
        fields: dict[str, Any] = {"student_nll": sample.student_nll, "student_tokens": sample.student_tokens,
                                  "style_token_rate": sample.style_token_rate}
        prompt_id = str(record["prompt_id"])
        if prompt_id in self.reference_prompts:
            # One reference per prompt for all its samples in this shard.
            if prompt_id not in self._references:
                self._references[prompt_id] = asyncio.ensure_future(
                    self._write_reference(prompt_id, record["problem"]))
            fields["student_reference"] = (await self._references[prompt_id]).get(prompt_id)
        return fields


def style_plan(gate: StyleGate, prompt_ids: Sequence[str], sample_ids: Sequence[str]) -> tuple[set[str], set[str] | None]:
    """(the reference prompts, the sample ids to score or None for all) of a build: the same on
    every shard, since both are drawn from the whole plan."""
    references = set(sampled(prompt_ids, gate.reference_prompts, gate.seed)) if gate.reference_prompts else set()
    chosen = set(sampled(sample_ids, gate.max_scored_samples, gate.seed)) if gate.max_scored_samples else None
    return references, chosen


@asynccontextmanager
async def open_style_scorer(decoder, generation, gate: StyleGate, reference_prompts: set[str],
                            chosen: set[str] | None) -> AsyncIterator[StyleScorer]:
    """A `StyleScorer` on the shard's open decoder: the student's backend, chat format and boundary
    predictor are the decoder's (scoring calls name no trace, so they leave the readings of the
    traces in flight alone); a predictor is loaded only for a mode whose decoder has none. References
    are written by the same participants in `student_only` mode."""
    from tessy_core.config import Mode
    from tessy_core.engine.loop import CooperativeDecoder
    from tessy_core.engine.records import Role
    from tessy_core.predictors import build_predictor

    teacher, student = decoder.participants[Role.teacher], decoder.participants[Role.student]
    loaded = None
    if student.predictor is None and generation.student_predictor is not None:
        loaded = build_predictor(generation.student_predictor)
    predictor = student.predictor or loaded
    student_only = generation.with_mode(Mode.student_only)
    references = CooperativeDecoder(teacher, student, student_only.engine, student_only.config_hash())

    async def write_reference(prompt_id: str, problem: str) -> dict[str, str]:
        return await student_references(references, {prompt_id: problem})

    try:
        yield StyleScorer(StudentStyle(backend=student.backend, chat_format=student.chat, predictor=predictor),
                          gate, reference_prompts, chosen, write_reference)
    finally:
        if loaded is not None:
            await loaded.aclose()

"""The figures of one evaluated model, from its judged answers: pass@k, format, style NLL; and
mean/spread over repeats. Plain Python, no model code."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.config import ThinkingMarkers
from tessy_core.verify import extract_program

# Why an output is not in the student's format (an output may have several).
NO_THINKING = "no_thinking"  # does not open with the student's thinking marker
UNCLOSED_THINKING = "unclosed_thinking"  # thinking never closed with the student's marker
TRUNCATED = "truncated"  # ran into max_new_tokens instead of ending its turn
NO_CODE = "no_code"  # the answer after the thinking has no program
FORMAT_ERRORS = (NO_THINKING, UNCLOSED_THINKING, TRUNCATED, NO_CODE)


@dataclass(frozen=True)
class ParsedOutput:
    thinking: str
    answer: str
    format_errors: tuple[str, ...]

    @property
    def format_ok(self) -> bool:
        return not self.format_errors


def parse_output(text: str, markers: ThinkingMarkers, ended: bool, language: str = "python") -> ParsedOutput:
    """Split a free-running completion (after the generation prompt) into thinking and answer, and
    say how it departs from the student's format: its opening and closing thinking markers, a turn
    that ends by itself, a program in the answer."""
    errors: list[str] = []
    body = text.lstrip()
    opener = markers.think_open.strip()
    if opener and body.startswith(opener):
        body = body[len(opener):]
    else:
        errors.append(NO_THINKING)
    closes = [(body.find(end), end) for end in markers.think_end if end and end in body]
    if closes:
        at, end = min(closes)
        # The full closing (e.g. harmony's switch to the final channel) when the model wrote it whole.
        close = markers.answer_open.strip() if body[at:].startswith(markers.answer_open.strip()) else end
        thinking, answer = body[:at], body[at + len(close):]
    else:
        errors.append(UNCLOSED_THINKING)
        thinking, answer = body, ""
    if not ended:
        errors.append(TRUNCATED)
    answer = answer.strip()
    if extract_program(answer, language) is None:  # type: ignore[arg-type]
        errors.append(NO_CODE)
    return ParsedOutput(thinking=thinking.strip(), answer=answer, format_errors=tuple(errors))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem from n answers of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} answers, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


class JudgedSample(BaseModel):
    """One answer of one model to one problem in one repeat."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    repeat: int
    sample_index: int
    passed: bool
    verdict: str
    format_errors: list[str] = Field(default_factory=list)
    thinking_tokens: int = 0
    nll_sum: float | None = Field(None, description="summed NLL of the thinking under the base student")
    nll_tokens: int = 0
    output: str = ""


class RepeatFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repeat: int
    pass_at: dict[str, float]  # "1" -> pass@1, ...
    format_ok: float
    format_errors: dict[str, int]
    style_nll: float | None  # token-weighted NLL of the thinking under the base student
    thinking_tokens_mean: float


class Spread(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: float | None
    std: float | None  # sample standard deviation over repeats (0 with one repeat)
    values: list[float | None]


class ModelFigures(BaseModel):
    """One model's figures: per repeat, and mean/spread over repeats."""

    model_config = ConfigDict(extra="forbid")

    model: str
    problems: int
    samples: int
    repeats: list[RepeatFigures]
    pass_at: dict[str, Spread]
    format_ok: Spread
    style_nll: Spread
    format_errors: dict[str, int]

    @property
    def pass_at_1(self) -> float | None:
        return self.pass_at["1"].mean if "1" in self.pass_at else None


def repeat_figures(repeat: int, samples: Sequence[JudgedSample], pass_k: Iterable[int]) -> RepeatFigures:
    by_problem: dict[str, list[JudgedSample]] = {}
    for sample in samples:
        by_problem.setdefault(sample.prompt_id, []).append(sample)
    pass_at = {}
    for k in sorted(set(pass_k)):
        per_problem = [pass_at_k(len(group), sum(s.passed for s in group), k) for group in by_problem.values()]
        pass_at[str(k)] = round(sum(per_problem) / len(per_problem), 6) if per_problem else 0.0
    errors = Counter(error for sample in samples for error in sample.format_errors)
    scored = [s for s in samples if s.nll_sum is not None and s.nll_tokens]
    tokens = sum(s.nll_tokens for s in scored)
    return RepeatFigures(
        repeat=repeat,
        pass_at=pass_at,
        format_ok=round(sum(not s.format_errors for s in samples) / len(samples), 6) if samples else 0.0,
        format_errors={error: errors.get(error, 0) for error in FORMAT_ERRORS},
        style_nll=round(sum(s.nll_sum for s in scored) / tokens, 6) if tokens else None,  # type: ignore[misc]
        thinking_tokens_mean=round(sum(s.thinking_tokens for s in samples) / len(samples), 2) if samples else 0.0,
    )


def spread(values: Sequence[float | None]) -> Spread:
    present = [v for v in values if v is not None]
    if not present:
        return Spread(mean=None, std=None, values=list(values))
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return Spread(mean=round(statistics.fmean(present), 6), std=round(std, 6), values=list(values))


def model_figures(model: str, samples: Sequence[JudgedSample], pass_k: Iterable[int]) -> ModelFigures:
    pass_k = sorted(set(pass_k))
    repeats = sorted({s.repeat for s in samples})
    per_repeat = [repeat_figures(r, [s for s in samples if s.repeat == r], pass_k) for r in repeats]
    errors = Counter(error for sample in samples for error in sample.format_errors)
    return ModelFigures(
        model=model,
        problems=len({s.prompt_id for s in samples}),
        samples=len(samples),
        repeats=per_repeat,
        pass_at={str(k): spread([r.pass_at[str(k)] for r in per_repeat]) for k in pass_k},
        format_ok=spread([r.format_ok for r in per_repeat]),
        style_nll=spread([r.style_nll for r in per_repeat]),
        format_errors={error: errors.get(error, 0) for error in FORMAT_ERRORS},
    )

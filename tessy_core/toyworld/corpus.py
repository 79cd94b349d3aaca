"""Training traces for both models, with exact style labels and the cross-reading injections.

A trace is a sequence of sentences, each an opener of the writer's style followed by a shared
capability clause, then a closing line of pure style. The teacher always takes the correct approach;
the student takes the buggy one on its weak families most of the time, and its code always follows
the approach its thinking states. To let each model continue after the other's phrases without
learning to write them, a share of each model's traces carries the other side's openers, marked as
injected so the LM loss skips them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.toyworld.families import FAMILY_BY_NAME, PLAN_CLAUSE, STUDENT_WEAK_FAMILIES, Approach, Family
from tessy_core.toyworld.problems import Problem
from tessy_core.toyworld.styles import STYLES, Style

Role = Literal["teacher", "student"]
Span = tuple[int, int]


class CorpusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    student_weak_bug_rate: float = Field(0.9, ge=0, le=1, description="buggy approach share on weak families")
    student_strong_bug_rate: float = Field(0.0, ge=0, le=1, description="buggy approach share elsewhere")
    edge_sentence_prob: float = Field(0.8, ge=0, le=1)
    example_sentence_prob: float = Field(0.7, ge=0, le=1)
    # Cross-reading: share of a model's traces that carry the other side's openers, and the chance
    # that a given sentence of such a trace gets one.
    injected_trace_share: float = Field(0.5, ge=0, le=1)
    injected_sentence_prob: float = Field(0.5, ge=0, le=1)
    # Teacher reasoning the student reads: in a share of the student's cross-reading traces that
    # would take the buggy approach, the teacher's (correct) approach sentences stand in its place,
    # masked from the loss, and the student's code follows them. The student learns to implement
    # reasoning it reads without learning to write that reasoning itself.
    teacher_reasoning_prob: float = Field(0.5, ge=0, le=1)


@dataclass
class TraceRecord:
    """One thinking trace and answer; spans are character offsets into `thinking`."""

    problem_id: str
    family: str
    role: Role
    statement: str
    approach: Literal["correct", "buggy"]
    thinking: str
    answer: str
    style_spans: list[Span] = field(default_factory=list)
    injected_spans: list[Span] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "TraceRecord":
        row = dict(row)
        row["style_spans"] = [tuple(span) for span in row["style_spans"]]
        row["injected_spans"] = [tuple(span) for span in row["injected_spans"]]
        return cls(**row)


class _ThinkingBuilder:
    """Appends sentences while recording which characters are style and which were injected."""

    def __init__(self) -> None:
        self._text = ""
        self.style_spans: list[Span] = []
        self.injected_spans: list[Span] = []

    @property
    def text(self) -> str:
        return self._text

    def add(self, piece: str, *, style: bool, injected: bool = False) -> None:
        if self._text:
            self._text += " "
        start = len(self._text)
        self._text += piece
        if style:
            self.style_spans.append((start, len(self._text)))
        if injected:
            self.injected_spans.append((start, len(self._text)))


def choose_approach(family: Family, role: Role, rng: Random, config: CorpusConfig) -> Approach:
    if role == "teacher":
        return family.correct
    rate = config.student_weak_bug_rate if family.name in STUDENT_WEAK_FAMILIES else config.student_strong_bug_rate
    return family.buggy if rng.random() < rate else family.correct


def capability_clauses(family: Family, approach: Approach, rng: Random, config: CorpusConfig) -> list[str]:
    """The work of a trace, in the wording both models share."""
    clauses = [rng.choice(family.tasks), approach.clause]
    if rng.random() < config.edge_sentence_prob:
        clauses.append(rng.choice(approach.edges))
    if rng.random() < config.example_sentence_prob:
        clauses.append(rng.choice(family.examples))
    clauses.append(PLAN_CLAUSE[family.input_kind])
    return clauses


def _opener(style: Style, index: int, rng: Random) -> str:
    return rng.choice(style.first_openers if index == 0 else style.openers)


def compose_thinking(
    clauses: list[str], writer: Style, other: Style, rng: Random, inject_prob: float, read_only: frozenset[int] = frozenset()
) -> _ThinkingBuilder:
    """Sentences `opener clause.` in the writer's style, then its closing line.

    With `inject_prob` > 0 the other side's openers are mixed in where they appear during
    interleaved decoding: in the teacher's text a student opener takes the place of the teacher's
    own (the student wrote the style, the teacher goes on with the work); in the student's text a
    teacher opener follows the student's (a teacher connective that slipped past a boundary).
    Clauses whose index is in `read_only` are marked injected too (read, not learned).
    """
    builder = _ThinkingBuilder()
    for index, clause in enumerate(clauses):
        inject = rng.random() < inject_prob
        if inject and writer.role == "teacher":
            builder.add(_opener(other, index, rng), style=True, injected=True)
        else:
            builder.add(_opener(writer, index, rng), style=True)
        if inject and writer.role == "student":
            builder.add(rng.choice(other.openers), style=True, injected=True)
        builder.add(clause + ".", style=False, injected=index in read_only)
    builder.add(rng.choice(writer.closings), style=True)
    return builder


def render_answer(family: Family, approach: Approach, style: Style, rng: Random) -> str:
    return f"{rng.choice(style.answer_intros)}\n```python\n{family.code(approach)}\n```"


def compose_trace(problem: Problem, role: Role, rng: Random, config: CorpusConfig, *, allow_injection: bool) -> TraceRecord:
    family = FAMILY_BY_NAME[problem.family]
    writer = STYLES[role]
    other = STYLES["student" if role == "teacher" else "teacher"]
    approach = choose_approach(family, role, rng, config)
    clauses = capability_clauses(family, approach, rng, config)
    injected = allow_injection and rng.random() < config.injected_trace_share
    read_only: frozenset[int] = frozenset()
    if injected and role == "student" and approach is family.buggy and rng.random() < config.teacher_reasoning_prob:
        approach, clauses, read_only = _with_teacher_reasoning(family, clauses, rng)
    builder = compose_thinking(
        clauses, writer, other, rng, config.injected_sentence_prob if injected else 0.0, read_only
    )
    return TraceRecord(
        problem_id=problem.source_id,
        family=family.name,
        role=role,
        statement=problem.statement,
        approach="correct" if approach is family.correct else "buggy",
        thinking=builder.text,
        answer=render_answer(family, approach, writer, rng),
        style_spans=builder.style_spans,
        injected_spans=builder.injected_spans,
    )


def _with_teacher_reasoning(family: Family, clauses: list[str], rng: Random) -> tuple[Approach, list[str], frozenset[int]]:
    """The buggy approach's sentences (clause, edge case) replaced by the correct approach's."""
    clauses = list(clauses)
    read_only = {1}
    clauses[1] = family.correct.clause
    if len(clauses) > 2 and clauses[2] in family.buggy.edges:
        clauses[2] = rng.choice(family.correct.edges)
        read_only.add(2)
    return family.correct, clauses, frozenset(read_only)


def build_corpus(
    problems: list[Problem],
    role: Role,
    n_traces: int,
    seed: int,
    config: CorpusConfig,
    *,
    allow_injection: bool,
) -> list[TraceRecord]:
    """`n_traces` traces cycling over `problems` (each pass in a fresh shuffled order)."""
    rng = Random(f"{seed}:corpus:{role}:{allow_injection}")
    traces: list[TraceRecord] = []
    order: list[Problem] = []
    while len(traces) < n_traces:
        if not order:
            order = list(problems)
            rng.shuffle(order)
        traces.append(compose_trace(order.pop(), role, rng, config, allow_injection=allow_injection))
    return traces

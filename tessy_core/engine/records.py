"""What the engine takes in and gives back: plain data, JSON-friendly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Role(str, Enum):
    teacher = "teacher"
    student = "student"

    @property
    def other(self) -> Role:
        return Role.student if self is Role.teacher else Role.teacher


class SpanEnd(str, Enum):
    """Why a span ended: the switch decision recorded with it."""

    boundary = "boundary"  # the active model's predictor found the other kind of token
    end_of_thinking = "end_of_thinking"  # the model closed its thinking
    single_writer = "single_writer"  # a one-model mode wrote the whole thinking


class SampleFailed(Exception):
    """An attempt failed. `final`: no other attempt could succeed (the sample ends at once)."""

    def __init__(self, reason: str, detail: str, *, final: bool = False):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.final = final


@dataclass
class Span:
    """A run of the thinking text written by one model."""

    role: Role
    text: str
    start: int  # character range in the thinking text
    end: int
    steps: int  # completion requests that contributed
    tokens_kept: int
    tokens_discarded: int  # written past a boundary and rolled back
    ended_by: SpanEnd | None = None


@dataclass
class ModelUsage:
    requests: int = 0
    tokens_generated: int = 0
    tokens_kept: int = 0
    tokens_discarded: int = 0

    def add(self, other: ModelUsage) -> None:
        self.requests += other.requests
        self.tokens_generated += other.tokens_generated
        self.tokens_kept += other.tokens_kept
        self.tokens_discarded += other.tokens_discarded


@dataclass(frozen=True)
class SampleRequest:
    sample_id: str
    prompt_id: str
    problem: str
    sample_index: int = 0


@dataclass
class SampleCheckpoint:
    """The resumable state of a running sample: enough to continue the same attempt."""

    sample_id: str
    attempt: int
    steps: int
    active: Role
    spans: list[Span]
    usage: dict[Role, ModelUsage]
    attempt_failures: list[str] = field(default_factory=list)

    @property
    def thinking(self) -> str:
        return "".join(span.text for span in self.spans)

    def to_record(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SampleCheckpoint:
        return cls(
            sample_id=record["sample_id"],
            attempt=record["attempt"],
            steps=record["steps"],
            active=Role(record["active"]),
            spans=[_span_from_record(s) for s in record["spans"]],
            usage={Role(k): ModelUsage(**v) for k, v in record["usage"].items()},
            attempt_failures=list(record.get("attempt_failures", [])),
        )


@dataclass
class SampleResult:
    sample_id: str
    prompt_id: str
    sample_index: int
    mode: str
    status: str  # "ok" | "failed"
    failure_reason: str | None
    problem: str
    thinking: str
    answer: str
    # The assistant turn in the student's format (thinking block + answer).
    assistant: str
    answer_role: Role
    spans: list[Span]
    usage: dict[Role, ModelUsage]
    attempts: int
    attempt_failures: list[str]
    wall_s: float
    identities: dict[str, str]  # teacher/student model ids, predictor ids, config hash
    # What the mode did besides the sample's own text (a reference it rewrote, the candidates and the
    # choice, the mode a mixture drew), each with the model that wrote it.
    mode_details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.problem}, {"role": "assistant", "content": self.assistant}]

    @property
    def teacher_token_share(self) -> float:
        kept = {role: sum(s.tokens_kept for s in self.spans if s.role is role) for role in Role}
        total = kept[Role.teacher] + kept[Role.student]
        return kept[Role.teacher] / total if total else 0.0

    def to_record(self) -> dict[str, Any]:
        record = _jsonable(asdict(self))
        record["messages"] = self.messages
        record["teacher_token_share"] = self.teacher_token_share
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SampleResult:
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        fields["answer_role"] = Role(fields["answer_role"])
        fields["spans"] = [_span_from_record(s) for s in fields["spans"]]
        fields["usage"] = {Role(k): ModelUsage(**v) for k, v in fields["usage"].items()}
        return cls(**fields)


def _span_from_record(record: dict[str, Any]) -> Span:
    ended_by = record.get("ended_by")
    return Span(**{**record, "role": Role(record["role"]), "ended_by": SpanEnd(ended_by) if ended_by else None})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {(_jsonable(k) if isinstance(k, Enum) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

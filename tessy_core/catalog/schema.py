"""The normalized prompt/test schema shared by the catalog, the toy world, the verifier and builds.

A prompt's identity is its content: `prompt_id` is derived from the statement, so the same problem
arriving from two sources (or twice from one) is recognized as one prompt.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

PROMPT_ID_HEX_CHARS = 16
DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_LIMIT_MB = 256
DEFAULT_LANGUAGE = "python"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdioTest(_Frozen):
    """Feed `input` on stdin; the program's stdout must match `output`."""

    kind: Literal["stdio"] = "stdio"
    input: str
    output: str
    hidden: bool = False


class CallTest(_Frozen):
    """Call `fn_name(*args)`; the return value must equal `expected`.

    `expected` is kept exactly as the source wrote it. Some sources (APPS/TACO, open-r1
    function_call) wrap a scalar result in a one-element list; the verifier decides how to compare.
    """

    kind: Literal["call"] = "call"
    fn_name: str = Field(min_length=1)
    args: list[Any]
    expected: Any
    hidden: bool = False


TestCase = Annotated[StdioTest | CallTest, Field(discriminator="kind")]
TESTS_ADAPTER = TypeAdapter(list[TestCase])


def normalize_statement(text: str) -> str:
    """Unicode NFC with newlines unified to "\\n" and outer whitespace stripped: the stored form."""
    text = unicodedata.normalize("NFC", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def statement_key(text: str) -> str:
    """The form hashed into `prompt_id`: NFC, every whitespace run (newlines too) becomes one space.

    Collapsing newlines as well makes re-wrapped copies of one statement the same prompt.
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def prompt_id_for(statement: str) -> str:
    """Stable content id of a statement: sha256 of `statement_key`, first 16 hex chars."""
    digest = hashlib.sha256(statement_key(statement).encode("utf-8")).hexdigest()
    return digest[:PROMPT_ID_HEX_CHARS]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PromptRecord(_Frozen):
    """One programming problem with its tests, as the catalog stores it."""

    prompt_id: str
    source: str = Field(min_length=1)
    source_id: str | None = None
    license: str | None = None
    statement: str = Field(min_length=1)
    tests: list[TestCase] = Field(default_factory=list)
    fn_name: str | None = None
    starter_code: str | None = None
    time_limit_s: float = Field(DEFAULT_TIME_LIMIT_S, gt=0)
    memory_limit_mb: int = Field(DEFAULT_MEMORY_LIMIT_MB, gt=0)
    difficulty: str | None = None
    tags: list[str] = Field(default_factory=list)
    language: str = DEFAULT_LANGUAGE
    ingested_at: datetime = Field(default_factory=_utc_now)

    @model_validator(mode="before")
    @classmethod
    def _derive_prompt_id(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("statement"), str):
            return data
        expected = prompt_id_for(data["statement"])
        given = data.get("prompt_id")
        if given is not None and given != expected:
            raise ValueError(f"prompt_id {given!r} does not match the statement (expected {expected})")
        return {**data, "prompt_id": expected}

    @field_validator("statement")
    @classmethod
    def _normalize_statement(cls, value: str) -> str:
        normalized = normalize_statement(value)
        if not normalized:
            raise ValueError("statement is empty after stripping whitespace")
        return normalized

    @property
    def hidden_test_count(self) -> int:
        return sum(1 for test in self.tests if test.hidden)

    @property
    def test_kind(self) -> Literal["none", "stdio", "call", "mixed"]:
        kinds = {test.kind for test in self.tests}
        if not kinds:
            return "none"
        if len(kinds) > 1:
            return "mixed"
        return "stdio" if kinds == {"stdio"} else "call"

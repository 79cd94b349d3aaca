"""Test cases in the schema shared with the catalog (see docs/CONVENTIONS.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class StdioTest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["stdio"] = "stdio"
    input: str
    output: str
    hidden: bool = False


class CallTest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["call"] = "call"
    fn_name: str = Field(min_length=1)
    args: list[Any]
    expected: Any
    hidden: bool = False


TestCase = Annotated[StdioTest | CallTest, Field(discriminator="kind")]
_TESTS = TypeAdapter(list[TestCase])


def parse_tests(tests: Iterable[Mapping[str, Any] | StdioTest | CallTest]) -> list[StdioTest | CallTest]:
    """Validate tests; a dict without `kind` is a stdio test (`{"input", "output"}` files)."""
    raw = [
        test if isinstance(test, StdioTest | CallTest) else ({"kind": "stdio", **test} if "kind" not in test else test)
        for test in tests
    ]
    return _TESTS.validate_python(raw)

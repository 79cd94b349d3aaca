"""Generated programming problems in the catalog's native schema, and a runner for their tests.

Every problem is an instance of a family (see `families.py`): a statement wording with a varied
context noun and an example, 5-6 stdin/stdout tests (1-2 visible, the rest hidden) whose hidden
part always exposes the family's typical bug, and the reference solution. Deterministic from a seed.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from random import Random
from typing import Any, Iterable

from tessy_core.toyworld.families import CONTEXT_NOUNS, FAMILIES, FAMILY_BY_NAME, Family

TIME_LIMIT_S = 2.0
MEMORY_LIMIT_MB = 256
_MAX_DRAWS = 200


@dataclass(frozen=True)
class StdioTest:
    input: str
    output: str
    hidden: bool


@dataclass(frozen=True)
class Problem:
    source_id: str
    family: str
    statement: str
    tests: tuple[StdioTest, ...]

    @property
    def hidden_tests(self) -> tuple[StdioTest, ...]:
        return tuple(test for test in self.tests if test.hidden)

    @property
    def reference_solution(self) -> str:
        family = FAMILY_BY_NAME[self.family]
        return family.code(family.correct)

    def to_row(self) -> dict[str, Any]:
        """The catalog's native JSONL row (see docs/CONVENTIONS.md)."""
        return {
            "statement": self.statement,
            "tests": [
                {"kind": "stdio", "input": t.input, "output": t.output, "hidden": t.hidden} for t in self.tests
            ],
            "time_limit_s": TIME_LIMIT_S,
            "memory_limit_mb": MEMORY_LIMIT_MB,
            "difficulty": "easy",
            "tags": ["toyworld", self.family],
            "source_id": self.source_id,
            "license": "generated",
            "language": "python",
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Problem":
        family = next(tag for tag in row["tags"] if tag in FAMILY_BY_NAME)
        tests = tuple(StdioTest(t["input"], t["output"], t["hidden"]) for t in row["tests"] if t["kind"] == "stdio")
        return cls(source_id=row["source_id"], family=family, statement=row["statement"], tests=tests)


def run_inline(code: str, stdin: str) -> str:
    """Run trusted code (a reference or buggy approach) in-process; returns what it printed."""
    lines = iter(stdin.splitlines())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<reference>", "exec"), {"__name__": "__main__", "input": lambda *_: next(lines)})
    return out.getvalue()


def outputs_match(actual: str | None, expected: str) -> bool:
    """Line-wise comparison that ignores trailing whitespace."""
    if actual is None:
        return False
    return [line.rstrip() for line in actual.strip().splitlines()] == [
        line.rstrip() for line in expected.strip().splitlines()
    ]


def _draw_tests(family: Family, rng: Random) -> tuple[StdioTest, ...]:
    total = rng.choice((5, 6))
    n_visible = rng.choice((1, 2))
    reference = family.code(family.correct)
    buggy = family.code(family.buggy)
    for _ in range(_MAX_DRAWS):
        visible = [family.random_input(rng) for _ in range(n_visible)]
        catchers = [family.bug_catcher(rng) for _ in range(2)]
        randoms = [family.random_input(rng) for _ in range(total - n_visible - len(catchers))]
        hidden = catchers + randoms
        rng.shuffle(hidden)
        inputs = visible + hidden
        if len(set(inputs)) < len(inputs):
            continue
        if all(outputs_match(run_inline(buggy, text), run_inline(reference, text)) for text in hidden):
            continue
        return tuple(
            StdioTest(text, run_inline(reference, text), hidden=index >= n_visible)
            for index, text in enumerate(inputs)
        )
    raise RuntimeError(f"family {family.name!r}: could not draw distinct tests that expose its bug")


def make_problem(family: Family, rng: Random, source_id: str) -> Problem:
    tests = _draw_tests(family, rng)
    wording = rng.choice(family.wordings).format(things=rng.choice(CONTEXT_NOUNS[family.input_kind]))
    example = tests[0]
    statement = f"{wording}\nExample: input `{example.input}` gives `{example.output.strip()}`."
    return Problem(source_id=source_id, family=family.name, statement=statement, tests=tests)


def generate_problems(
    count: int, seed: int, split: str, exclude_statements: Iterable[str] = ()
) -> list[Problem]:
    """`count` problems with distinct statements, families balanced round-robin in shuffled rounds."""
    rng = Random(f"{seed}:{split}")
    seen = set(exclude_statements)
    problems: list[Problem] = []
    order: list[Family] = []
    while len(problems) < count:
        if not order:
            order = list(FAMILIES)
            rng.shuffle(order)
        family = order.pop()
        for _ in range(_MAX_DRAWS):
            problem = make_problem(family, rng, source_id=f"toyworld-{split}-{len(problems):06d}")
            if problem.statement not in seen:
                break
        else:
            raise RuntimeError(f"family {family.name!r}: no fresh statement after {_MAX_DRAWS} draws")
        seen.add(problem.statement)
        problems.append(problem)
    return problems


_HARNESS = r"""
import contextlib, io, json, signal, sys

class _Timeout(Exception):
    pass

def _alarm(*_):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)
payload = json.load(sys.stdin)
code = compile(payload["code"], "<solution>", "exec")
results = []
for text in payload["inputs"]:
    lines = iter(text.splitlines())
    def _input(*_):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None
    out = io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, payload["time_limit_s"])
    try:
        with contextlib.redirect_stdout(out):
            exec(code, {"__name__": "__main__", "input": _input})
        results.append(out.getvalue())
    except BaseException:
        results.append(None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
sys.__stdout__.write(json.dumps(results))
"""


def run_program(code: str, inputs: list[str], time_limit_s: float = TIME_LIMIT_S) -> list[str | None]:
    """Run untrusted code once per input in a separate Python process; None marks a crash or timeout."""
    payload = json.dumps({"code": code, "inputs": inputs, "time_limit_s": time_limit_s})
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-c", _HARNESS],
            input=payload,
            capture_output=True,
            text=True,
            timeout=time_limit_s * len(inputs) + 10,
        )
    except subprocess.TimeoutExpired:
        return [None] * len(inputs)
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError:
        return [None] * len(inputs)


def passes_tests(code: str, tests: Iterable[StdioTest]) -> bool:
    tests = list(tests)
    outputs = run_program(code, [test.input for test in tests])
    return all(outputs_match(actual, test.output) for actual, test in zip(outputs, tests))

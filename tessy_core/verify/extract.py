"""Find the program in a model's final answer: the last fenced code block in the wanted language."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["python", "cpp"]

FENCE_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", "py3"}),
    "cpp": frozenset({"cpp", "c++", "cc", "cxx"}),
}
THINKING_END = "</think>"
_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


class Program(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Language = "python"
    source: str = Field(min_length=1)


@dataclass(frozen=True)
class CodeBlock:
    tag: str  # first word of the info string, lower-cased; "" for a plain fence
    body: str


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced blocks in order. A fence left open at the end (truncated answer) still counts."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence = opening["fence"]
        body: list[str] = []
        while index < len(lines):
            line = lines[index]
            index += 1
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(line)
        info = opening["info"].split()
        blocks.append(CodeBlock(tag=info[0].lower() if info else "", body="\n".join(body) + "\n"))
    return blocks


def _parses_as_python(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. invalid escapes in prose
            ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _is_program_in(block: CodeBlock, language: Language) -> bool:
    if not block.body.strip():
        return False
    if block.tag in FENCE_TAGS[language]:
        return True
    return language == "python" and block.tag == "" and _parses_as_python(block.body)


def extract_program(answer: str, language: Language = "python") -> Program | None:
    """The last fenced block of `language` in the final answer, or None (verdict `no_code`).

    Text up to the last `</think>` is reasoning, not the answer, and is ignored. A plain fence
    (no language tag) counts for Python only if it parses as Python.
    """
    if language not in FENCE_TAGS:
        raise ValueError(f"unsupported language {language!r}; expected one of {sorted(FENCE_TAGS)}")
    final_answer = answer.rsplit(THINKING_END, 1)[-1]
    for block in reversed(code_blocks(final_answer)):
        if _is_program_in(block, language):
            return Program(language=language, source=block.body)
    return None

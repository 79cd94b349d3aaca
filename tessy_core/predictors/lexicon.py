"""A predictor that needs no training: style = configured discourse phrases, the rest is capability."""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

from tessy_core.predictors.base import TokenKind

# How much of the context to re-read so a phrase straddling the chunk's start is still seen.
_CONTEXT_CHARS = 64


class LexiconPredictor:
    def __init__(self, phrases: Sequence[str]):
        cleaned = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
        if not cleaned:
            raise ValueError("a lexicon predictor needs at least one phrase")
        alternation = "|".join(re.escape(p) for p in cleaned)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
        digest = hashlib.sha256("\n".join(cleaned).encode()).hexdigest()[:12]
        self._identity = f"lexicon:{digest}"

    @property
    def identity(self) -> str:
        return self._identity

    def style_mask(self, text: str) -> list[bool]:
        """Per character: inside a style phrase?"""
        mask = [False] * len(text)
        for match in self._pattern.finditer(text):
            mask[match.start() : match.end()] = [True] * (match.end() - match.start())
        return mask

    async def find_boundary(self, context: str, chunk: str, target: TokenKind, min_offset: int = 0) -> int | None:
        return self.find_boundary_sync(context, chunk, target, min_offset)

    def find_boundary_sync(self, context: str, chunk: str, target: TokenKind, min_offset: int = 0) -> int | None:
        tail = context[-_CONTEXT_CHARS:]
        mask = self.style_mask(tail + chunk)[len(tail) :]
        for pos in range(min_offset, len(chunk)):
            char = chunk[pos]
            if target == TokenKind.STYLE and mask[pos] and (pos == 0 or not mask[pos - 1]):
                return _back_over_spaces(chunk, pos, min_offset)
            # Punctuation and spaces belong to neither kind: capability begins at a word character.
            if target == TokenKind.CAPABILITY and not mask[pos] and (char.isalnum() or char in "_(`[{=<>+-*/"):
                return _back_over_spaces(chunk, pos, min_offset)
        return None

    async def aclose(self) -> None:
        return None


def _back_over_spaces(chunk: str, pos: int, floor: int) -> int:
    """Leading whitespace goes with the span that follows it, as BPE tokens carry it."""
    while pos > floor and chunk[pos - 1] in " \t":
        pos -= 1
    return pos

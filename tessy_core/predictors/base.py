"""Boundary predictors: where, inside a freshly written chunk, the other model should take over."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol, runtime_checkable


class TokenKind(IntEnum):
    CAPABILITY = 0  # the work: analysis, formulas, numbers, code
    STYLE = 1  # discourse: openers, hedges, transitions


@runtime_checkable
class BoundaryPredictor(Protocol):
    """Finds the first position in `chunk` where a token of kind `target` begins.

    `context` is the trace written before the chunk (the predictor may read its tail). Positions are
    character offsets into `chunk`; only tokens starting at or after `min_offset` count. Returns None
    when the whole chunk (from `min_offset`) is of the other kind.
    """

    @property
    def identity(self) -> str: ...

    async def find_boundary(self, context: str, chunk: str, target: TokenKind, min_offset: int = 0) -> int | None: ...

    async def aclose(self) -> None: ...

"""Bounds shared by the quality gates' configurations."""

from __future__ import annotations

from pydantic import Field, model_validator

from tessy_core.strict import Strict


class LengthBounds(Strict):
    """Allowed length of a text column, in characters (tokenizer-independent)."""

    min_chars: int = Field(1, ge=0)
    max_chars: int | None = Field(None, ge=1, description="None: no upper bound")

    @model_validator(mode="after")
    def _ordered(self) -> "LengthBounds":
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        return self


class ShareBand(Strict):
    """The teacher's share of the kept thinking tokens expected of an interleaved sample."""

    low: float = Field(0.5, ge=0.0, le=1.0)
    high: float = Field(0.9, ge=0.0, le=1.0)
    # Short traces swing widely; the share of samples that must fall inside the band.
    mostly: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "ShareBand":
        if self.high < self.low:
            raise ValueError(f"teacher share band high ({self.high}) is below low ({self.low})")
        return self

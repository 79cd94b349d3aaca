"""Boundary predictors behind one interface (`BoundaryPredictor`), chosen by kind (`PredictorConfig.kind`).

A new predictor is one module with a class implementing `BoundaryPredictor` plus one entry in
`PREDICTORS` (its module is imported when the first one is built).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tessy_core.predictors.base import BoundaryPredictor, TokenKind

if TYPE_CHECKING:
    from tessy_core.config import PredictorConfig

__all__ = ["PREDICTORS", "BoundaryPredictor", "TokenKind", "build_predictor", "register_predictor"]

PredictorFactory = Callable[["PredictorConfig"], BoundaryPredictor]


def _lexicon(config: PredictorConfig) -> BoundaryPredictor:
    from tessy_core.predictors.lexicon import LexiconPredictor

    return LexiconPredictor(config.phrases)


def _learned(config: PredictorConfig) -> BoundaryPredictor:
    from tessy_core.predictors.learned import LearnedPredictor

    return LearnedPredictor(
        config.path, window_tokens=config.window_tokens, device=config.device, max_batch=config.max_batch
    )


# kind -> factory from a PredictorConfig
PREDICTORS: dict[str, PredictorFactory] = {
    "lexicon": _lexicon,
    "learned": _learned,
}


def register_predictor(kind: str, factory: PredictorFactory) -> None:
    if kind in PREDICTORS:
        raise ValueError(f"a predictor of kind {kind!r} is already registered")
    PREDICTORS[kind] = factory


def build_predictor(config: PredictorConfig) -> BoundaryPredictor:
    """The predictor a `PredictorConfig` asks for."""
    try:
        factory = PREDICTORS[config.kind]
    except KeyError:
        raise ValueError(f"unknown predictor kind {config.kind!r}; known: {', '.join(sorted(PREDICTORS))}") from None
    return factory(config)

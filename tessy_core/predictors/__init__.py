"""Boundary predictors behind one interface (`BoundaryPredictor`), chosen by kind (`PredictorConfig.kind`).

A new predictor is one module with a class implementing `BoundaryPredictor` plus one
`register_predictor` call (`PREDICTORS`) (its module is imported when the first one is built).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tessy_core.predictors.base import BoundaryPredictor, TokenKind
from tessy_core.registry import Registry

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
        config.path, window_tokens=config.window_tokens, device=config.device, max_batch=config.max_batch,
        cpu_threads=config.cpu_threads,
    )


# kind -> factory from a PredictorConfig
PREDICTORS: Registry[PredictorFactory] = Registry("predictor kind")
PREDICTORS.register("lexicon", _lexicon)
PREDICTORS.register("learned", _learned)
register_predictor = PREDICTORS.register


def build_predictor(config: PredictorConfig) -> BoundaryPredictor:
    """The predictor a `PredictorConfig` asks for."""
    return PREDICTORS.get(config.kind)(config)

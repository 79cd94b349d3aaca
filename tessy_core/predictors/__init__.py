"""Boundary predictors behind one interface (`BoundaryPredictor`)."""

from tessy_core.predictors.base import BoundaryPredictor, TokenKind

__all__ = ["BoundaryPredictor", "TokenKind", "build_predictor"]


def build_predictor(config) -> BoundaryPredictor:
    """The predictor a `PredictorConfig` asks for."""
    if config.kind == "lexicon":
        from tessy_core.predictors.lexicon import LexiconPredictor

        return LexiconPredictor(config.phrases)
    from tessy_core.predictors.learned import LearnedPredictor

    return LearnedPredictor(config.path, window_tokens=config.window_tokens, device=config.device, max_batch=config.max_batch)

"""Predictors are chosen by kind from one registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tessy_core.config import PredictorConfig
from tessy_core.predictors import build_predictor, register_predictor
from tessy_core.predictors.lexicon import LexiconPredictor


def test_the_lexicon_kind_builds_a_lexicon_predictor() -> None:
    predictor = build_predictor(PredictorConfig(kind="lexicon", phrases=["Hmm", "Wait"]))
    assert isinstance(predictor, LexiconPredictor)
    assert predictor.identity.startswith("lexicon:")


def test_a_new_predictor_is_one_registration(scoped_registries) -> None:
    made = object()
    register_predictor("constant", lambda config: made)
    assert build_predictor(SimpleNamespace(kind="constant")) is made
    with pytest.raises(ValueError, match="already registered"):
        register_predictor("constant", lambda config: made)
    with pytest.raises(ValueError, match="unknown predictor kind 'oracle'; known: constant, learned, lexicon"):
        build_predictor(SimpleNamespace(kind="oracle"))

"""A predictor in the published format (a Qwen3 token classifier with 2 labels, plain
`save_pretrained` folder, no tessy metadata, tokenizer without a pad token) drops in from a local
folder: the engine's loader, the generation config and the evaluator all take it."""

from __future__ import annotations

import json

import pytest

from tessy_core.config import PredictorConfig
from tessy_core.predictors import build_predictor
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.evaluation import evaluate_predictor
from tessy_core.predictors.learned import LearnedPredictor
from tests.predictors.synthetic import labelled_corpus


@pytest.fixture(scope="module")
def released_dir(tiny_models, tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForTokenClassification

    out = tmp_path_factory.mktemp("released") / "Qwen3-Predictor-Teacher"
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["teacher"])
    tokenizer.pad_token = None
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=32, num_labels=2,
    )
    Qwen3ForTokenClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Released folders (written by transformers 4.x) spell out the default labels.
    saved = json.loads((out / "config.json").read_text())
    saved.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    return out


def test_the_folder_is_what_the_published_predictors_look_like(released_dir):
    config = json.loads((released_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForTokenClassification"] and len(config["id2label"]) == 2
    assert not (released_dir / "tessy_predictor.json").exists()


async def test_the_engine_loads_it_from_the_generation_config(released_dir):
    predictor = build_predictor(PredictorConfig(kind="learned", path=str(released_dir), window_tokens=64))
    assert isinstance(predictor, LearnedPredictor)
    assert predictor.identity == "learned:Qwen3-Predictor-Teacher@local" and predictor.window_tokens == 64
    chunk = " we read n numbers. Okay, so print the sum."
    boundary = await predictor.find_boundary("Thus", chunk, TokenKind.STYLE)
    assert boundary is None or 0 <= boundary < len(chunk)
    default = LearnedPredictor(released_dir)
    assert default.window_tokens == 200  # the published predictors' context


def test_it_can_be_evaluated_on_labelled_text(released_dir):
    metrics = evaluate_predictor(released_dir, labelled_corpus(10, seed=9))
    assert metrics.tokens > 100 and 0.0 <= metrics.token_accuracy <= 1.0
    assert metrics.style_starts.gold > 0 and metrics.capability_starts.gold > 0

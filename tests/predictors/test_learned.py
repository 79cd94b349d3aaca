"""The learned predictor: window, next-token labels, offsets and micro-batching, on a real classifier."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.batching import MicroBatcher
from tessy_core.predictors.learned import METADATA_FILE, LearnedPredictor


@pytest.fixture(scope="module")
def classifier_dir(tiny_models, tmp_path_factory):
    """A real 2-label Qwen3 token classifier whose head says 'style' exactly after the token " Thus"
    (weights set by hand, so the expected boundaries are known)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("predictor")
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["teacher"])
    model = AutoModelForTokenClassification.from_pretrained(tiny_models["teacher"], num_labels=2)
    marker_ids = tokenizer.encode(" we", add_special_tokens=False)
    assert len(marker_ids) == 1, "the tiny tokenizer should keep ' we' as one token"
    # Make the output depend only on the current token: no residual updates from the layers, and
    # " we" alone owns embedding dimension 0, which the head reads.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        embeddings = model.model.embed_tokens.weight
        embeddings[:, 0] = 0.0
        embeddings[marker_ids[0]] = 0.0
        embeddings[marker_ids[0], 0] = 1.0
        model.score.weight.zero_()
        model.score.weight[1, 0] = 1.0
        model.score.bias = torch.nn.Parameter(torch.tensor([4.0, 0.0]))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / METADATA_FILE).write_text(json.dumps({"name": "hand-set", "version": "1", "window_tokens": 32}))
    return out, tokenizer


def _kinds_by_hand(predictor, text):
    ids = predictor.tokenizer.encode(text, add_special_tokens=False)
    return predictor._predict_batch([ids])[0], ids


async def test_boundary_is_the_token_after_a_positive_prediction(classifier_dir):
    path, _ = classifier_dir
    predictor = LearnedPredictor(path)
    assert predictor.window_tokens == 32 and predictor.identity == "learned:hand-set@1"
    chunk = " compute the sum we print"
    kinds, ids = _kinds_by_hand(predictor, chunk)
    positive = [i for i, kind in enumerate(kinds) if kind == 1]
    assert positive, "the hand-set head should fire on ' we'"
    boundary = await predictor.find_boundary("", chunk, TokenKind.STYLE)
    # The token after the first positive position starts the style span.
    expected = len(predictor.tokenizer.decode(ids[: positive[0] + 1]))
    assert boundary == expected


async def test_min_offset_and_no_boundary(classifier_dir):
    path, _ = classifier_dir
    predictor = LearnedPredictor(path)
    assert await predictor.find_boundary("", " compute the sum", TokenKind.STYLE) is None
    chunk = " compute the sum we print"
    assert await predictor.find_boundary("", chunk, TokenKind.STYLE, min_offset=len(chunk)) is None


async def test_concurrent_calls_share_forward_passes(classifier_dir):
    path, _ = classifier_dir
    predictor = LearnedPredictor(path, max_batch=16)
    chunks = [f" item {i} we go on" for i in range(40)]
    results = await asyncio.gather(*(predictor.find_boundary("ctx", c, TokenKind.STYLE) for c in chunks))
    singles = [await LearnedPredictor(path).find_boundary("ctx", c, TokenKind.STYLE) for c in chunks[:5]]
    assert results[:5] == singles  # batching (with padding) changes no answer
    assert predictor.batcher.batches < 40 and predictor.batcher.mean_batch_size > 1


async def test_micro_batcher_reports_errors_to_every_waiter():
    def explode(items):
        raise RuntimeError("model crashed")

    batcher = MicroBatcher(explode, max_batch=4)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_rejects_a_classifier_without_two_labels(tiny_models, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    AutoModelForTokenClassification.from_pretrained(tiny_models["student"], num_labels=3).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_models["student"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="2-label"):
        LearnedPredictor(tmp_path)

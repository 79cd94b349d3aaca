"""The incremental learned predictor: per-stream KV caches read only new tokens, batched across
streams, and give the predictions a full read of the same tokens gives (a real random-weight
classifier, so attention and the cache matter)."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.learned import METADATA_FILE, LearnedPredictor

TEXTS = [
    "Okay so we read the numbers and add them up. Thus we print the total sum of all values here.",
    "Hmm, let me think, the list may be empty so the answer is zero. Now we check the edge case.",
    "We need to note that the input is one word. Check: for abca the answer is NO. Let's implement.",
]


@pytest.fixture(scope="module")
def random_classifier(tiny_models, tmp_path_factory):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("random_classifier")
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_models["teacher"], num_labels=2)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # decisions that depend on every layer and on attention
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_models["teacher"]).save_pretrained(out)
    (out / METADATA_FILE).write_text(json.dumps({"name": "random", "version": "1", "window_tokens": 512}))
    return out


def _full_read(predictor: LearnedPredictor, text: str) -> tuple[list[int], list[int]]:
    ids = predictor.tokenizer.encode(text, add_special_tokens=False)
    return ids, predictor._predict_batch([ids])[0]


async def _feed_words(predictor: LearnedPredictor, stream: str, text: str) -> None:
    words = text.split(" ")
    for n in range(1, len(words) + 1):
        await predictor.find_boundary("", " ".join(words[:n]), TokenKind.STYLE, stream=stream)


async def test_streams_read_word_by_word_and_batched_match_a_full_read(random_classifier):
    predictor = LearnedPredictor(random_classifier, device="cpu")
    # Three streams of different lengths at once: their steps share forward calls (padded caches).
    await asyncio.gather(*(_feed_words(predictor, f"s{i}", text) for i, text in enumerate(TEXTS)))
    for i, text in enumerate(TEXTS):
        stream = predictor._reader._streams[f"s{i}"]
        ids, kinds = _full_read(predictor, text)
        assert stream.ids == ids and stream.kinds == kinds
    stats = predictor.stats()
    assert stats["incremental"] and stats["forward_calls"] < stats["calls"]  # batched across streams
    # Only new tokens were read (a word's last token is read again when the next word arrives).
    distinct = sum(len(predictor.tokenizer.encode(t, add_special_tokens=False)) for t in TEXTS)
    assert predictor._reader.tokens_read < 1.6 * distinct


async def test_text_thrown_away_after_a_cut_is_rolled_back(random_classifier):
    predictor = LearnedPredictor(random_classifier, device="cpu")
    await _feed_words(predictor, "s", TEXTS[0])
    diverged = TEXTS[0][:40] + " multiply them instead."
    await predictor.find_boundary(diverged[:30], diverged[30:], TokenKind.STYLE, stream="s")
    stream = predictor._reader._streams["s"]
    ids, kinds = _full_read(predictor, diverged)
    assert stream.ids == ids and stream.kinds == kinds and stream.text == diverged


async def test_the_incremental_answer_is_the_full_window_answer_and_lookahead_hands_over_at_the_end(random_classifier):
    predictor = LearnedPredictor(random_classifier, device="cpu")
    context, chunk = TEXTS[1][:30], TEXTS[1][30:]
    for target in TokenKind:
        for min_offset in (0, 5):
            full = await predictor.find_boundary(context, chunk, target, min_offset)
            streamed = await predictor.find_boundary(context, chunk, target, min_offset, stream=f"{target}-{min_offset}")
            assert streamed == full
    ids, kinds = _full_read(predictor, context + chunk)
    after = TokenKind(kinds[-1])
    cut = await predictor.find_boundary(context + chunk[:-1], chunk[-1:] , after, lookahead=True, stream="look")
    # Either a boundary inside the last piece or, failing one, the chunk's end.
    assert cut is not None and cut <= 1
    predictor.release("look")
    assert "look" not in predictor._reader._streams


async def test_a_sliding_window_keeps_the_cache_bounded_and_reads_each_token_about_once(random_classifier):
    predictor = LearnedPredictor(random_classifier, device="cpu", window_tokens=16)
    text = " ".join(TEXTS * 3)
    await _feed_words(predictor, "s", text)
    stream = predictor._reader._streams["s"]
    total = len(predictor.tokenizer.encode(text, add_special_tokens=False))
    assert stream.cached <= 16
    assert predictor._reader.tokens_read < 1.6 * total
    assert stream.ids == predictor.tokenizer.encode(text, add_special_tokens=False)[-len(stream.ids):]

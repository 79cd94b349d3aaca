"""Token labels, next-token windows and the metrics, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from tessy_core.predictors.evaluation import score_windows
from tessy_core.predictors.labels import IGNORE_INDEX, LabelledText, Window, build_windows, token_kinds


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["teacher"])


def test_a_token_is_style_when_it_overlaps_a_style_span(tokenizer):
    text = "Okay, so we read n numbers. Wait, print it."
    item = LabelledText(text, [(0, 8), (28, 33)])
    ids, kinds = token_kinds(item, tokenizer)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert len(ids) == len(kinds) == len(offsets)
    expected = [int(any(s < s_end and e > s_start for s_start, s_end in item.style_spans)) for s, e in offsets]
    for index in range(len(offsets) - 2, -1, -1):  # whitespace-only tokens go with the next token
        if not text[offsets[index][0] : offsets[index][1]].strip():
            expected[index] = expected[index + 1]
    assert kinds == expected
    assert kinds[0] == 1 and 0 in kinds
    assert " " in [text[s:e] for s, e in offsets], "the sample should hold a whitespace-only token"


def test_labels_are_the_next_tokens_kind_and_windows_cover_every_token_once(tokenizer):
    text = " ".join(["Okay, so we read n numbers. Thus print the maximum."] * 6)
    spans, at = [], 0
    while (found := text.find("Okay, so", at)) >= 0:
        spans.append((found, found + 8))
        at = found + 1
    item = LabelledText(text, spans)
    ids, kinds = token_kinds(item, tokenizer)
    windows = build_windows([item], tokenizer, window_tokens=16, stride=5)
    assert all(len(w.input_ids) <= 16 for w in windows)
    scored = []
    for window in windows:
        assert window.input_ids == ids[window.start : window.start + len(window.input_ids)]
        for position, label in enumerate(window.labels):
            token = window.start + position + 1
            assert label == (kinds[token] if token < len(ids) else IGNORE_INDEX)
            if position >= window.score_from and label != IGNORE_INDEX:
                scored.append(token)
    assert scored == list(range(1, len(ids)))  # every token after the first, exactly once
    assert windows[-1].start + len(windows[-1].input_ids) == len(ids)


def test_bad_spans_are_refused():
    with pytest.raises(ValueError, match="outside"):
        LabelledText("abc", [(1, 5)])
    with pytest.raises(ValueError, match="disjoint"):
        LabelledText("abcdef", [(0, 3), (2, 4)])


def test_metrics_by_hand():
    # gold kinds of tokens 1..8: C C S S C C S C ; predicted: C S S S C S S C
    gold = [0, 0, 1, 1, 0, 0, 1, 0]
    predicted = [0, 1, 1, 1, 0, 1, 1, 0]
    window = Window(text_index=0, start=0, input_ids=list(range(9)), labels=gold + [IGNORE_INDEX], score_from=0)
    metrics = score_windows([window], [predicted + [0]])
    assert metrics.tokens == 8 and metrics.token_accuracy == pytest.approx(6 / 8)
    assert metrics.style_precision == pytest.approx(3 / 5) and metrics.style_recall == pytest.approx(1.0)
    # tokens are numbered from 1; a start needs t >= 2. gold style starts {3, 7}, predicted {2, 6}
    assert (metrics.style_starts.gold, metrics.style_starts.predicted, metrics.style_starts.matched) == (2, 2, 0)
    # gold capability starts {5, 8}, predicted {5, 8}
    assert metrics.capability_starts.f1 == pytest.approx(1.0)
    loose = score_windows([window], [predicted + [0]], tolerance_tokens=1)
    assert loose.style_starts.matched == 2 and loose.style_starts.f1 == pytest.approx(1.0)

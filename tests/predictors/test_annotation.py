"""Parsing and aligning what annotator LLMs really return."""

from __future__ import annotations

import httpx
import pytest

from tessy_core.predictors.annotation import (
    AnnotationError,
    AnnotationStats,
    AnnotationStatus,
    AnnotatorConfig,
    OpenAIAnnotator,
    align_phrases,
    annotate_windows,
    cut_windows,
    label_window,
    parse_phrases,
    stitch,
)

WINDOW = "Okay, so we read n. Wait, so the sum is s. Hmm, so print s, so done."


@pytest.mark.parametrize(
    "reply",
    [
        '["Okay, so", "Wait,"]',
        '```json\n["Okay, so", "Wait,"]\n```',
        '```\n["Okay, so", "Wait,"]\n```\nThese are the style phrases.',
        'Sure! Here are the phrases:\n["Okay, so", "Wait,"]\nLet me know if you need more.',
        '<think>The text [has] many parts, ["not this"] maybe.</think>\n["Okay, so", "Wait,"]',
        'reasoning about [brackets] first...</think>["Okay, so", "Wait,"]',
        '[{"phrase": "Okay, so"}, {"text": "Wait,"}]',
        'Phrases: [1, 2] no wait: ["Okay, so", "Wait,"]',
    ],
)
def test_the_array_is_found_in_messy_replies(reply):
    parsed = parse_phrases(reply)
    assert parsed.phrases == ["Okay, so", "Wait,"] and not parsed.truncated


@pytest.mark.parametrize("reply", ["", "I cannot help with that.", "{'phrases': 'Okay'}", '["Okay", 3', "[1, 2, 3]"])
def test_replies_without_an_array_of_phrases_are_invalid(reply):
    with pytest.raises(AnnotationError) as caught:
        parse_phrases(reply)
    assert caught.value.status == AnnotationStatus.invalid_json


def test_a_truncated_array_keeps_its_complete_phrases():
    parsed = parse_phrases('```json\n["Okay, so", "Wait,", "Hmm, s')
    assert parsed.truncated and parsed.phrases == ["Okay, so", "Wait,"]


def test_phrases_align_in_order_at_their_next_whole_word_occurrence():
    alignment = align_phrases(WINDOW, ["Okay, so", "so", "Hmm, so", "so"])
    found = [WINDOW[s:e] for s, e in alignment.spans]
    assert found == ["Okay, so", "so", "Hmm, so", "so"]
    # the second "so" is the one after "Wait,", not the one inside "Okay, so"; the last one is after "s,"
    assert alignment.spans[1][0] == WINDOW.index("Wait, so") + len("Wait, ")
    assert alignment.spans[3][0] == WINDOW.rindex(", so done") + 2
    also = "It also works, so fine."
    (span,) = align_phrases(also, ["so"]).spans
    assert also[span[0] : span[1]] == "so" and span[0] == also.index(", so") + 2  # not inside "also"


def test_unmatched_or_out_of_order_phrases_drop_the_window():
    with pytest.raises(AnnotationError, match="not found"):
        align_phrases(WINDOW, ["Let me think"])
    with pytest.raises(AnnotationError) as caught:
        align_phrases(WINDOW, ["Wait,", "Okay, so"])
    assert caught.value.status == AnnotationStatus.unmatched


def test_an_exact_repeat_listed_once_too_often_is_ignored():
    alignment = align_phrases("Okay, so we go. Then stop.", ["Okay, so", "Okay, so"])
    assert len(alignment.spans) == 1 and alignment.repeats_ignored == 1


def test_unicode_and_typography_differences_still_align():
    text = "Hmm\u2009\u2014 let\u2019s see, d\u00e9j\u00e0 vu: x\u00b2 grows.\nLet me\n think."
    alignment = align_phrases(text, ["Hmm - let's see,", "déjà vu:", "Let me think."])
    assert [text[s:e] for s, e in alignment.spans] == [
        "Hmm\u2009\u2014 let\u2019s see,", "d\u00e9j\u00e0 vu:", "Let me\n think.",
    ]


def test_windows_tile_the_trace_and_stitch_back_into_labelled_text():
    trace = " ".join(f"Wait, step {i} adds one." for i in range(20))
    windows = cut_windows("t1", trace, words=7)
    assert "".join(w.text for w in windows) == trace and len(windows) == 15  # 100 words
    replies = {w.window_id: '["' + '", "'.join(["Wait,"] * w.text.count("Wait,")) + '"]' for w in windows}
    replies[windows[5].window_id] = "no idea"  # dropped: splits the trace in two runs
    results = [label_window(w, replies[w.window_id]) for w in windows]
    texts = stitch({"t1": trace}, results)
    assert len(texts) == 2
    assert texts[0].text == "".join(w.text for w in windows[:5])
    assert texts[1].text == "".join(w.text for w in windows[6:])
    for item in texts:
        assert all(item.text[s:e] == "Wait," for s, e in item.style_spans)
        assert len(item.style_spans) == item.text.count("Wait,")
    stats = AnnotationStats.of(results)
    assert (stats.windows, stats.accepted, stats.invalid_json) == (15, 14, 1)
    assert stats.rejected_share == pytest.approx(1 / 15)


def test_a_salvaged_window_is_labelled_only_up_to_its_last_phrase():
    (window,) = cut_windows("t", "Okay, so a is one. Wait, b is two. Hmm, c.", words=100)
    result = label_window(window, '["Okay, so", "Wait,", "Hm')
    assert result.status == AnnotationStatus.salvaged
    (item,) = stitch({"t": window.text}, [result])
    assert item.text == "Okay, so a is one. Wait," and item.style_phrases() == ["Okay, so", "Wait,"]


async def test_failed_requests_are_recorded_per_window_and_the_rest_go_on():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        calls.append(body)
        text = body["messages"][0]["content"]
        if "boom" in text:
            return httpx.Response(400, json={"error": "bad request"})
        return httpx.Response(200, json={"choices": [{"message": {"content": '```json\n["Okay,"]\n```'}}]})

    annotator = OpenAIAnnotator(
        AnnotatorConfig(base_url="http://annotator/v1", model="m", max_retries=0), transport=httpx.MockTransport(handler)
    )
    windows = cut_windows("a", "Okay, fine.", 50) + cut_windows("b", "Okay, boom.", 50)
    results = await annotate_windows(annotator, windows, concurrency=2)
    await annotator.aclose()
    assert [r.status for r in results] == [AnnotationStatus.accepted, AnnotationStatus.request_failed]
    assert "HTTP 400" in results[1].reason
    assert calls[0]["model"] == "m" and "Okay, fine." in calls[0]["messages"][0]["content"]


def test_a_prompt_without_the_text_slot_is_refused():
    with pytest.raises(ValueError, match="text"):
        OpenAIAnnotator(AnnotatorConfig(base_url="http://x/v1", model="m", prompt="label this"))

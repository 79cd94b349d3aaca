"""Handover stop strings mined from labelled thinking text."""

from __future__ import annotations

import json

from tessy_core.predictors.stops import (
    STOPS_FORMAT,
    handover_stops_outdated,
    load_handover_stops,
    mine_handover_stops,
    write_handover_stops,
)


def _labelled(text: str, phrases: list[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, cursor = [], 0
    for phrase in phrases:
        start = text.index(phrase, cursor)
        spans.append((start, start + len(phrase)))
        cursor = start + len(phrase)
    return text, spans


ROWS = [
    _labelled("Okay, so we add the numbers. Thus we print it. Now the sum is ready.", ["Okay, so", "Thus", "Now"]),
    _labelled("Hmm, so the list is sorted. Thus the answer is the last one.", ["Hmm, so", "Thus"]),
    _labelled("Okay, so we read a word. Now compare it. Thus print YES.", ["Okay, so", "Now", "Thus"]),
    # "Now" inside capability text: a stop there would cut a teacher sentence in two.
    _labelled("Okay, so we print Now and then. Thus done.", ["Okay, so", "Thus"]),
] * 5


def test_teacher_stops_are_precise_openers_after_capability_text():
    mined = mine_handover_stops(ROWS, "teacher", min_precision=0.9)
    assert mined["stops"] == [" Thus"]
    assert mined["precision"][" Thus"] == 1.0
    assert mined["rejected_for_precision"][" Now"] < 0.9  # 2 of 3 occurrences are openers
    assert 0 < mined["coverage"] < 1


def test_student_stops_are_whole_style_runs_that_capability_follows(tmp_path):
    mined = mine_handover_stops(ROWS, "student")
    assert set(mined["stops"]) >= {"Okay, so", "Hmm, so"}
    assert "Now" not in mined["stops"]  # once it is capability text: the stop would cut there
    write_handover_stops(tmp_path, mined)
    assert set(load_handover_stops(tmp_path)) == set(mined["stops"])
    assert load_handover_stops(tmp_path / "missing") == ()


def test_teacher_stops_shorten_to_the_word_s_letters_where_that_is_as_precise():
    rows = [
        _labelled("We add them. Check: the sum is 6. Note: n is small. Thus print it.", ["Check:", "Note:", "Thus"]),
        # " Note" inside capability text: cutting there would split a sentence, so " Note:" stays whole.
        _labelled("We read Notes of the list. Note: it may be empty. Thus print 0.", ["Note:", "Thus"]),
    ] * 5
    mined = mine_handover_stops(rows, "teacher")
    assert set(mined["stops"]) == {" Check", " Note:", " Thus"}
    assert mined["shortened"] == {" Check:": " Check"}
    assert mined["format"] == STOPS_FORMAT
    # Each boundary is still found by the shortened stop (the server cuts one token earlier).
    assert mined["coverage"] == 1.0


def test_a_stops_file_of_an_older_format_is_outdated(tmp_path):
    assert handover_stops_outdated(tmp_path)  # none yet
    (tmp_path / "handover_stops.json").write_text(json.dumps({"role": "teacher", "stops": [" Check:"]}))
    assert handover_stops_outdated(tmp_path)
    write_handover_stops(tmp_path, mine_handover_stops(ROWS, "teacher"))
    assert not handover_stops_outdated(tmp_path)

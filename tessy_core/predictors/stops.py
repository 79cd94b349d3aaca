"""Handover stop strings: the frequent, unambiguous text at a predictor's boundaries, mined from its
own training labels, so the inference server ends most spans by itself.

A span request that carries these as stop strings ends at the server the moment the model writes
one, with (nearly) nothing decoded past the handover; the predictor then confirms the handover or
overrides it (`engine.span_requests: stops`, docs/engine.md).

- teacher (hands over at the first STYLE token): a stop is the whitespace and first word of a style
  run that follows capability text (" Thus", " Check:"), shortened to the word's letters (" Check")
  where that is just as precise. The server cuts the text before it; the opener's first token (the
  tokenizers split punctuation off a word) is the only one decoded for nothing, and the predictor
  confirms the handover from the text before it.
- student (hands over at the first CAPABILITY token): a stop is a whole style run that capability
  text follows ("Okay, so"). The engine puts the matched text back (it is the student's span) and
  the predictor's reading of the next token decides the handover at its end.

A candidate is kept when it is precise (at least `min_precision` of its occurrences in the labelled
text sit at such a boundary) and frequent; the file records each stop's support and precision and
the share of boundaries the set covers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

from tessy_core.files import write_atomic

STOPS_FILE = "handover_stops.json"
# 2: teacher stops shortened to the word's letters. A file of an older format is mined again.
STOPS_FORMAT = 2
Role = Literal["teacher", "student"]


def style_runs(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Style spans merged where only whitespace separates them (one run of style)."""
    runs: list[list[int]] = []
    for start, end in sorted(spans):
        if runs and not text[runs[-1][1] : start].strip():
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [(a, b) for a, b in runs]


def _candidates(text: str, spans: Sequence[tuple[int, int]], role: Role) -> list[tuple[str, int]]:
    """(stop string, the offset in `text` where it matches at a boundary) for one labelled text."""
    out = []
    for start, end in style_runs(text, spans):
        if role == "teacher":
            if start == 0 or not text[start - 1].isspace() or not text[:start].strip():
                continue  # not after capability text
            word_end = start
            while word_end < len(text) and not text[word_end].isspace():
                word_end += 1
            out.append((text[start - 1 : word_end], start - 1))
        else:
            if not text[end:].strip():
                continue  # the trace ends in style: no capability follows
            out.append((text[start:end], start))
    return out


def mine_handover_stops(
    texts: Iterable[tuple[str, Sequence[tuple[int, int]]]],
    role: Role,
    *,
    min_precision: float = 0.9,
    min_share: float = 0.005,
    max_stops: int = 16,
) -> dict:
    """Mine stop strings from labelled thinking text ((text, style spans) pairs); see the module doc."""
    rows = [(text, list(spans)) for text, spans in texts]
    support: Counter[str] = Counter()
    boundaries = 0
    at_boundary: dict[str, set[tuple[int, int]]] = {}
    for index, (text, spans) in enumerate(rows):
        for stop, offset in _candidates(text, spans, role):
            boundaries += 1
            support[stop] += 1
            at_boundary.setdefault(stop, set()).add((index, offset))
    floor = max(2, int(min_share * boundaries))
    frequent = [stop for stop, count in support.most_common() if count >= floor and stop.strip()]
    occurrences: Counter[str] = Counter()
    for text, _ in rows:
        for stop in frequent:
            occurrences[stop] += sum(1 for _ in _matches(text, stop))
    chosen, precision = [], {}
    for stop in frequent:
        hits = len(at_boundary[stop])
        share = hits / occurrences[stop] if occurrences[stop] else 0.0
        precision[stop] = round(share, 4)
        if share >= min_precision and len(chosen) < max_stops:
            chosen.append(stop)
    covered = sum(support[stop] for stop in chosen)
    shortened = {}
    if role == "teacher":
        boundary_offsets = {found for offsets in at_boundary.values() for found in offsets}
        shortened = _shortened_stops(rows, chosen, boundary_offsets, min_precision)
    stops = list(dict.fromkeys(shortened.get(stop, stop) for stop in chosen))
    return {
        "format": STOPS_FORMAT,
        "role": role,
        "stops": stops,
        "shortened": shortened,
        "support": {stop: support[stop] for stop in chosen},
        "precision": {stop: precision[stop] for stop in chosen},
        "rejected_for_precision": {stop: p for stop, p in precision.items() if stop not in chosen},
        "boundaries": boundaries,
        "coverage": round(covered / boundaries, 4) if boundaries else 0.0,
        "min_precision": min_precision,
    }


def _matches(text: str, stop: str) -> Iterator[int]:
    """Every offset where the server would see `stop` in `text` (overlapping ones too)."""
    position = text.find(stop)
    while position != -1:
        yield position
        position = text.find(stop, position + 1)


def _letters(word_stop: str) -> str:
    """The stop cut to its word's leading letters (" Check:" -> " Check", " Let's" -> " Let"), or
    the stop itself when its word does not begin with one."""
    end = 1
    while end < len(word_stop) and word_stop[end].isalnum():
        end += 1
    return word_stop[:end] if end > 1 else word_stop


def _shortened_stops(rows, chosen: list[str], boundary_offsets: set[tuple[int, int]], min_precision: float) -> dict[str, str]:
    """{teacher stop: its letters} where the letters alone are as precise: a stop string also
    matches inside longer words (" Check" in " Checking"), and every such match must sit at a
    boundary as often as the whole word's did."""
    shortened = {}
    for stop in chosen:
        short = _letters(stop)
        if short == stop:
            continue
        hits = total = 0
        for index, (text, _) in enumerate(rows):
            for position in _matches(text, short):
                total += 1
                hits += (index, position) in boundary_offsets
        if total and hits / total >= min_precision:
            shortened[stop] = short
    return shortened


def handover_stops_outdated(predictor_dir: str | Path) -> bool:
    """Whether the predictor's stops file is missing or of an older format (to be mined again)."""
    path = Path(predictor_dir) / STOPS_FILE
    try:
        return json.loads(path.read_text()).get("format", 1) < STOPS_FORMAT
    except (OSError, ValueError, AttributeError):
        return True


def write_handover_stops(predictor_dir: str | Path, mined: dict) -> Path:
    path = Path(predictor_dir) / STOPS_FILE
    write_atomic(path, json.dumps(mined, indent=2, ensure_ascii=False) + "\n")
    return path


def load_handover_stops(predictor_dir: str | Path) -> tuple[str, ...]:
    """The stop strings stored with a predictor, or () when it has none."""
    path = Path(predictor_dir) / STOPS_FILE
    if not path.is_file():
        return ()
    try:
        stops = json.loads(path.read_text()).get("stops") or []
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(s for s in stops if isinstance(s, str) and s.strip())

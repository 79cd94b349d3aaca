"""Labelled thinking text and the next-token windows a boundary predictor is trained and scored on.

The one definition both training and the engine (`LearnedPredictor`) rely on:
- a token is STYLE when its character range overlaps a style span, otherwise CAPABILITY; a token
  of whitespace only takes the kind of the token after it;
- the text is tokenized without special tokens, as `LearnedPredictor.find_boundary` does;
- the label at window position i is the kind of token i+1 (the classifier is causal and decides,
  as it reads, whether the NEXT token is style); a window holds at most `window_tokens` tokens,
  the same number of recent tokens the engine feeds the predictor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tessy_core.predictors.base import TokenKind

IGNORE_INDEX = -100  # positions without a label (no next token, padding)


@dataclass(frozen=True)
class LabelledText:
    """Thinking text with the character spans of its style phrases; every other character is
    capability."""

    text: str
    style_spans: list[tuple[int, int]]

    def __post_init__(self) -> None:
        previous_end = 0
        for start, end in self.style_spans:
            if not (0 <= start < end <= len(self.text)):
                raise ValueError(f"style span ({start}, {end}) is outside the text (length {len(self.text)})")
            if start < previous_end:
                raise ValueError(f"style spans must be sorted and disjoint; ({start}, {end}) overlaps the previous one")
            previous_end = end

    def to_json(self) -> dict:
        return {"text": self.text, "style_spans": [list(span) for span in self.style_spans]}

    @classmethod
    def from_json(cls, row: dict) -> "LabelledText":
        if not isinstance(row, dict) or "text" not in row or "style_spans" not in row:
            raise ValueError("a labelled text needs 'text' and 'style_spans'")
        return cls(text=row["text"], style_spans=[(int(s), int(e)) for s, e in row["style_spans"]])

    def style_phrases(self) -> list[str]:
        return [self.text[start:end] for start, end in self.style_spans]


def read_labelled_jsonl(path: str | Path) -> list[LabelledText]:
    """Labelled texts from a JSONL file (one `{"text", "style_spans"}` object a line); a bad line
    raises with its line number."""
    rows: list[LabelledText] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(LabelledText.from_json(json.loads(line)))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return rows


def write_labelled_jsonl(path: str | Path, rows: Iterable[LabelledText]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


def data_fingerprint(rows: Sequence[LabelledText]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row.to_json(), ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def token_kinds(item: LabelledText, tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of the text (no special tokens) and the kind of each token."""
    encoded = tokenizer(item.text, add_special_tokens=False, return_offsets_mapping=True)
    style_chars = [0] * (len(item.text) + 1)  # prefix sums of the style mask
    mask = bytearray(len(item.text))
    for start, end in item.style_spans:
        mask[start:end] = b"\x01" * (end - start)
    for index, flag in enumerate(mask):
        style_chars[index + 1] = style_chars[index] + flag
    offsets = encoded["offset_mapping"]
    kinds = [
        int(TokenKind.STYLE) if end > start and style_chars[end] - style_chars[start] > 0 else int(TokenKind.CAPABILITY)
        for start, end in offsets
    ]
    # Whitespace belongs to neither kind: a whitespace-only token goes with the token after it, as
    # BPE tokens carry their leading space (and as the lexicon predictor cuts).
    for index in range(len(kinds) - 2, -1, -1):
        start, end = offsets[index]
        if not item.text[start:end].strip():
            kinds[index] = kinds[index + 1]
    return list(encoded["input_ids"]), kinds


@dataclass(frozen=True)
class Window:
    """`window_tokens` (or fewer) consecutive tokens of one text with next-token labels.

    `labels[i]` is the kind of the token after position i (IGNORE_INDEX past the text's end).
    `score_from`: the first position whose label no earlier window of the same text covered, so
    scoring each text's positions once uses positions >= score_from (they have the most context).
    """

    text_index: int
    start: int
    input_ids: list[int]
    labels: list[int]
    score_from: int


def build_windows(
    texts: Sequence[LabelledText], tokenizer, window_tokens: int, stride: int | None = None
) -> list[Window]:
    """Cut every text into windows of `window_tokens` tokens, `stride` tokens apart (default: half a
    window); the last window of a text reaches its end. Labels are shifted by one token (see the
    module docstring)."""
    if window_tokens < 2:
        raise ValueError("window_tokens must be at least 2")
    stride = stride or max(1, window_tokens // 2)
    if not 1 <= stride <= window_tokens:
        raise ValueError(f"stride must be between 1 and window_tokens ({window_tokens}), got {stride}")
    windows: list[Window] = []
    for text_index, item in enumerate(texts):
        ids, kinds = token_kinds(item, tokenizer)
        if len(ids) < 2:
            continue  # no next token to label
        start, covered = 0, 0  # covered: label positions (global) already in an earlier window
        while True:
            end = min(start + window_tokens, len(ids))
            labels = [kinds[i + 1] if i + 1 < len(ids) else IGNORE_INDEX for i in range(start, end)]
            windows.append(Window(text_index, start, ids[start:end], labels, max(0, covered - start)))
            covered = end
            if end >= len(ids):
                break
            start += stride
    return windows

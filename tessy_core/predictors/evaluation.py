"""How good a boundary predictor is on labelled thinking text.

Every token t >= 1 of a text is scored once: its kind is predicted at position t-1 (the label shift),
from the window in which it has the most preceding context (see `labels.build_windows`).

Metrics:
- token accuracy: predicted kind == gold kind, over every scored token;
- style tokens: precision / recall / F1 of predicting STYLE per token;
- boundaries, in both directions the engine uses them. A boundary of kind K is a token t (t >= 2)
  of kind K whose previous token t-1 is of the other kind: the first token of a run of K.
  `style_starts` (K = STYLE) is what the teacher's predictor must find in teacher chunks;
  `capability_starts` (K = CAPABILITY) is what the student's predictor must find in student chunks.
  Gold boundaries come from the gold kinds, predicted ones from the predicted kinds; a predicted
  boundary matches an unmatched gold boundary of the same text at most `tolerance_tokens` tokens
  away (0: the exact token). Precision = matched / predicted, recall = matched / gold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.labels import IGNORE_INDEX, LabelledText, Window, build_windows

PredictFn = Callable[[list[list[int]]], list[list[int]]]


class BoundaryScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gold: int
    predicted: int
    matched: int
    precision: float
    recall: float
    f1: float


class PredictorMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: int
    tokens: int
    token_accuracy: float
    style_share_gold: float
    style_share_predicted: float
    style_precision: float
    style_recall: float
    style_f1: float
    style_starts: BoundaryScores
    capability_starts: BoundaryScores
    tolerance_tokens: int = 0

    @property
    def boundary_f1(self) -> float:
        """Mean boundary F1 over both directions."""
        return (self.style_starts.f1 + self.capability_starts.f1) / 2

    def boundary_scores(self, target: TokenKind) -> BoundaryScores:
        return self.style_starts if target == TokenKind.STYLE else self.capability_starts

    def flat(self) -> dict[str, float]:
        """Scalar metrics by name (for the catalog and metrics files)."""
        out: dict[str, float] = {
            key: float(value) for key, value in self.model_dump().items() if isinstance(value, (int, float))
        }
        for direction in ("style_starts", "capability_starts"):
            for key, value in getattr(self, direction).model_dump().items():
                out[f"{direction}_{key}"] = float(value)
        out["boundary_f1"] = self.boundary_f1
        return out


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _starts(kinds: dict[int, int], target: int) -> list[int]:
    return [t for t in sorted(kinds) if t >= 2 and kinds[t] == target and kinds.get(t - 1, target) != target]


def _match(gold: list[int], predicted: list[int], tolerance: int) -> int:
    unmatched = list(gold)
    matched = 0
    for position in predicted:
        best = None
        for index, candidate in enumerate(unmatched):
            distance = abs(candidate - position)
            if distance <= tolerance and (best is None or distance < abs(unmatched[best] - position)):
                best = index
        if best is not None:
            unmatched.pop(best)
            matched += 1
    return matched


def score_windows(
    windows: Sequence[Window], predictions: Sequence[Sequence[int]], tolerance_tokens: int = 0
) -> PredictorMetrics:
    """Metrics from windows and the predicted next-token kinds for each of their positions."""
    gold: dict[int, dict[int, int]] = {}
    predicted: dict[int, dict[int, int]] = {}
    for window, kinds in zip(windows, predictions, strict=True):
        text_gold = gold.setdefault(window.text_index, {})
        text_predicted = predicted.setdefault(window.text_index, {})
        for position in range(window.score_from, len(window.labels)):
            label = window.labels[position]
            if label == IGNORE_INDEX:
                continue
            token = window.start + position + 1
            text_gold[token] = label
            text_predicted[token] = int(kinds[position])
    style = int(TokenKind.STYLE)
    tokens = correct = gold_style = predicted_style = true_style = 0
    boundary_counts = {kind: [0, 0, 0] for kind in (style, int(TokenKind.CAPABILITY))}
    for text_index, text_gold in gold.items():
        text_predicted = predicted[text_index]
        for token, label in text_gold.items():
            guess = text_predicted[token]
            tokens += 1
            correct += guess == label
            gold_style += label == style
            predicted_style += guess == style
            true_style += label == style and guess == style
        for kind, counts in boundary_counts.items():
            gold_starts, predicted_starts = _starts(text_gold, kind), _starts(text_predicted, kind)
            counts[0] += len(gold_starts)
            counts[1] += len(predicted_starts)
            counts[2] += _match(gold_starts, predicted_starts, tolerance_tokens)

    def boundary(kind: int) -> BoundaryScores:
        n_gold, n_predicted, n_matched = boundary_counts[kind]
        precision, recall = _ratio(n_matched, n_predicted), _ratio(n_matched, n_gold)
        return BoundaryScores(
            gold=n_gold, predicted=n_predicted, matched=n_matched, precision=precision, recall=recall,
            f1=_f1(precision, recall),
        )

    style_precision, style_recall = _ratio(true_style, predicted_style), _ratio(true_style, gold_style)
    return PredictorMetrics(
        texts=len(gold),
        tokens=tokens,
        token_accuracy=_ratio(correct, tokens),
        style_share_gold=_ratio(gold_style, tokens),
        style_share_predicted=_ratio(predicted_style, tokens),
        style_precision=style_precision,
        style_recall=style_recall,
        style_f1=_f1(style_precision, style_recall),
        style_starts=boundary(style),
        capability_starts=boundary(int(TokenKind.CAPABILITY)),
        tolerance_tokens=tolerance_tokens,
    )


def evaluate_windows(predict: PredictFn, windows: Sequence[Window], batch_size: int = 32, tolerance_tokens: int = 0) -> PredictorMetrics:
    if not windows:
        raise ValueError("nothing to evaluate: no text has two or more tokens")
    predictions: list[list[int]] = []
    for begin in range(0, len(windows), batch_size):
        predictions.extend(predict([w.input_ids for w in windows[begin : begin + batch_size]]))
    return score_windows(windows, predictions, tolerance_tokens)


def evaluate_model(
    model,
    tokenizer,
    data: Sequence[LabelledText],
    window_tokens: int,
    *,
    stride: int | None = None,
    batch_size: int = 32,
    tolerance_tokens: int = 0,
    device: str = "cpu",
) -> PredictorMetrics:
    """Evaluate an in-memory token classifier exactly as the engine would run it."""
    from tessy_core.predictors.learned import pad_id_of, predict_next_kinds

    was_training = model.training
    model.eval()
    try:
        windows = build_windows(data, tokenizer, window_tokens, stride or max(1, window_tokens // 4))
        pad_id = pad_id_of(tokenizer)
        return evaluate_windows(
            lambda batch: predict_next_kinds(model, batch, pad_id, device), windows, batch_size, tolerance_tokens
        )
    finally:
        model.train(was_training)


def evaluate_predictor(
    predictor_dir: str | Path,
    data: Sequence[LabelledText],
    *,
    window_tokens: int | None = None,
    stride: int | None = None,
    batch_size: int = 32,
    tolerance_tokens: int = 0,
    device: str = "cpu",
) -> PredictorMetrics:
    """Evaluate a predictor folder (trained here or released) loaded the way the engine loads it.

    The window is the predictor's own (`tessy_predictor.json`, else 200 tokens) unless given.
    """
    from tessy_core.predictors.learned import LearnedPredictor

    # Whole windows in batches of `batch_size`, nothing beside it: torch's own thread count.
    predictor = LearnedPredictor(predictor_dir, window_tokens=window_tokens, device=device, cpu_threads=None)
    windows = build_windows(data, predictor.tokenizer, predictor.window_tokens, stride or max(1, predictor.window_tokens // 4))
    return evaluate_windows(predictor._predict_batch, windows, batch_size, tolerance_tokens)

"""Style consistency: does the data read like the student's own writing? (the property TESSY exists for)

This module judges staged rows; it never opens a model. The figures are measured per row on the
shard workers (`tessy_core.builder.style_score`) and staged with the rows:
- `student_nll`: the student's mean per-token negative log-likelihood of the assistant text after its
  own generation prompt. Lower: more student-like.
- `style_token_rate`: the share of the thinking's student tokens that the student's boundary
  predictor labels style (discourse, hedges, transitions).
- `student_reference`: for a sampled subset of prompts, the student's own response to the prompt.
Here, per sample:
- `teacher_token_share`: the teacher's share of the kept thinking tokens, from the sample's spans.
- `tfidf_similarity`: TF-IDF cosine between the sample's assistant text and the student's reference,
  over the student's tokenizer's tokens.

Per version: the means (and counts) of those. A `StyleGate` holds thresholds and turns the
figures into pass/fail checks with reasons, like the GX suite; per-sample NLL limits become
rejection reasons for `tessy_core.quality.policy.split_by_policy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tessy_core.quality.bounds import ShareBand
from tessy_core.strict import Strict

Tokenize = Callable[[str], Sequence[int | str]]


class StyleGate(Strict):
    """Thresholds on the style figures of a version (None: not checked) and how to measure them."""

    max_mean_student_nll: float | None = Field(None, gt=0, description="version mean of per-sample student NLL")
    max_sample_student_nll: float | None = Field(None, gt=0, description="per sample: above it, the sample is rejected")
    teacher_share: ShareBand | None = Field(None, description="band for the version's mean teacher token share")
    min_style_token_rate: float | None = Field(None, ge=0, le=1)
    min_tfidf_similarity: float | None = Field(None, ge=0, le=1)
    interleaved_mode: str = Field("tessy", description="the mode the teacher share band applies to")
    reference_prompts: int = Field(16, ge=0, description="prompts sampled for the TF-IDF comparison")
    max_scored_samples: int | None = Field(None, ge=1, description="score at most this many samples (sampled)")
    seed: int = 0
    predictor_window_chars: int = Field(256, ge=16, description="text handed to the predictor per call")
    concurrency: int = Field(8, ge=1)
    on_failure: Literal["block", "publish_with_warnings"] = "block"


class SampleStyle(Strict):
    sample_id: str
    prompt_id: str | None = None
    mode: str | None = None
    student_nll: float | None = None
    student_tokens: int | None = None
    teacher_token_share: float | None = None
    style_token_rate: float | None = None
    tfidf_similarity: float | None = None


class StyleCheck(Strict):
    check: str
    success: bool
    observed: float | None
    threshold: str
    detail: str = ""


class StyleReport(Strict):
    success: bool
    on_failure: Literal["block", "publish_with_warnings"]
    version: dict[str, float | int | None]
    checks: list[StyleCheck]
    samples: list[SampleStyle]
    sample_rejections: dict[str, list[str]] = Field(
        default_factory=dict, description="sample_id -> reasons, for split_by_policy(extra_reasons=...)")
    summary_markdown: str

    @property
    def blocks_publish(self) -> bool:
        return not self.success and self.on_failure == "block"

    @property
    def failed_checks(self) -> list[str]:
        return [check.check for check in self.checks if not check.success]


# --- per-sample figures ------------------------------------------------------------------


def teacher_token_share(spans: Iterable[Mapping[str, Any]] | None) -> float | None:
    """The teacher's share of kept tokens over a sample's spans (None without spans)."""
    kept = {"teacher": 0, "student": 0}
    for span in spans or ():
        kept[str(span["role"])] = kept.get(str(span["role"]), 0) + int(span.get("tokens_kept") or 0)
    total = kept["teacher"] + kept["student"]
    return kept["teacher"] / total if total else None


class Tfidf:
    """TF-IDF over token sequences: smoothed idf fitted on a corpus, l2-normalised vectors."""

    def __init__(self, corpus: Sequence[Sequence[int | str]]) -> None:
        self.vocabulary: dict[int | str, int] = {}
        for document in corpus:
            for token in document:
                self.vocabulary.setdefault(token, len(self.vocabulary))
        counts = self._counts(corpus)
        document_frequency = (counts > 0).sum(axis=0)
        self.idf = np.log((1 + len(corpus)) / (1 + document_frequency)) + 1.0

    def _counts(self, documents: Sequence[Sequence[int | str]]) -> np.ndarray:
        matrix = np.zeros((len(documents), len(self.vocabulary)), dtype=np.float64)
        for row, document in enumerate(documents):
            for token in document:
                column = self.vocabulary.get(token)
                if column is not None:
                    matrix[row, column] += 1.0
        return matrix

    def vectors(self, documents: Sequence[Sequence[int | str]]) -> np.ndarray:
        weighted = self._counts(documents) * self.idf
        norms = np.linalg.norm(weighted, axis=1, keepdims=True)
        return np.divide(weighted, norms, out=np.zeros_like(weighted), where=norms > 0)

    def cosine(self, left: Sequence[Sequence[int | str]], right: Sequence[Sequence[int | str]]) -> list[float]:
        """Row-wise cosine of left[i] and right[i]."""
        return [float(v) for v in (self.vectors(left) * self.vectors(right)).sum(axis=1)]


def tfidf_similarities(texts: Sequence[str], references: Sequence[str], tokenize: Tokenize) -> list[float]:
    """Cosine of each text with its reference (same index); idf fitted on both sets together."""
    left = [list(tokenize(text)) for text in texts]
    right = [list(tokenize(text)) for text in references]
    return Tfidf(left + right).cosine(left, right)


# --- sampling ----------------------------------------------------------------------


def sampled(keys: Iterable[str], n: int | None, seed: int) -> list[str]:
    """A deterministic subset of `keys` (all when n is None): the same keys and seed, the same subset."""
    unique = sorted(set(keys))
    if n is None or n >= len(unique):
        return unique
    return sorted(unique, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())[:n]


# --- a version ------------------------------------------------------------------------------------


def with_similarities(samples: list[SampleStyle], rows: list[Mapping[str, Any]], references: Mapping[str, str],
                      tokenize: Tokenize, gate: StyleGate) -> list[SampleStyle]:
    """`samples` (one per row of `rows`) with the TF-IDF similarity of each row's assistant text to
    its prompt's reference, for the sampled reference prompts (idf fitted on all of them together)."""
    prompt_ids = sampled((str(r.get("prompt_id")) for r in rows if r.get("prompt_id") in references),
                         gate.reference_prompts, gate.seed)
    wanted = set(prompt_ids)
    indices = [i for i, row in enumerate(rows) if str(row.get("prompt_id")) in wanted]
    if not indices:
        return samples
    similarities = tfidf_similarities([rows[i]["assistant"] for i in indices],
                                      [references[str(rows[i]["prompt_id"])] for i in indices], tokenize)
    updated = list(samples)
    for index, similarity in zip(indices, similarities):
        updated[index] = updated[index].model_copy(update={"tfidf_similarity": similarity})
    return updated


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 6) if present else None


def _aggregate(samples: list[SampleStyle], gate: StyleGate) -> dict[str, float | int | None]:
    interleaved = [s for s in samples if s.mode in (None, gate.interleaved_mode)]
    tokens = sum(s.student_tokens or 0 for s in samples)
    # Token-weighted NLL: the per-token figure over the whole version.
    weighted = sum((s.student_nll or 0.0) * (s.student_tokens or 0) for s in samples if s.student_nll is not None)
    return {
        "samples_scored": len(samples),
        "student_nll_mean": _mean(s.student_nll for s in samples),
        "student_nll_per_token": round(weighted / tokens, 6) if tokens else None,
        "teacher_token_share_mean": _mean(s.teacher_token_share for s in interleaved),
        "style_token_rate_mean": _mean(s.style_token_rate for s in samples),
        "tfidf_similarity_mean": _mean(s.tfidf_similarity for s in samples),
        "tfidf_prompts": len({s.prompt_id for s in samples if s.tfidf_similarity is not None}),
    }


def _checks(version: Mapping[str, Any], gate: StyleGate) -> list[StyleCheck]:
    checks: list[StyleCheck] = []

    def check(name: str, observed: float | None, ok: Callable[[float], bool], threshold: str) -> None:
        if observed is None:
            checks.append(StyleCheck(check=name, success=False, observed=None, threshold=threshold,
                                     detail="not measured (no samples, predictor or references)"))
        else:
            checks.append(StyleCheck(check=name, success=ok(observed), observed=observed, threshold=threshold))

    if gate.max_mean_student_nll is not None:
        limit = gate.max_mean_student_nll
        check("student_nll", version["student_nll_mean"], lambda v: v <= limit, f"<= {limit:g}")
    if gate.teacher_share is not None:
        band = gate.teacher_share
        check("teacher_share", version["teacher_token_share_mean"], lambda v: band.low <= v <= band.high,
              f"in [{band.low:g}, {band.high:g}]")
    if gate.min_style_token_rate is not None:
        low = gate.min_style_token_rate
        check("style_token_rate", version["style_token_rate_mean"], lambda v: v >= low, f">= {low:g}")
    if gate.min_tfidf_similarity is not None:
        low = gate.min_tfidf_similarity
        check("tfidf_similarity", version["tfidf_similarity_mean"], lambda v: v >= low, f">= {low:g}")
    return checks


def _summary(success: bool, gate: StyleGate, version: Mapping[str, Any], checks: list[StyleCheck]) -> str:
    if success:
        verdict = "PASSED"
    else:
        verdict = "FAILED: publishing blocked" if gate.on_failure == "block" else "FAILED: publishing with warnings"
    lines = [f"### Style consistency {verdict}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value if value is not None else 'n/a'} |" for name, value in version.items()]
    if checks:
        lines += ["", "| check | result | observed | threshold |", "|---|---|---|---|"]
        lines += [f"| {c.check} | {'ok' if c.success else '**failed**'} | "
                  f"{c.observed if c.observed is not None else c.detail} | {c.threshold} |" for c in checks]
    return "\n".join(lines)


def judge_style(samples: list[SampleStyle], gate: StyleGate) -> StyleReport:
    """The version's figures over `samples`, the gate's checks and per-sample rejections."""
    version = _aggregate(samples, gate)
    checks = _checks(version, gate)
    rejections = {
        sample.sample_id: [f"style: student NLL {sample.student_nll:.3f} above {gate.max_sample_student_nll:g}"]
        for sample in samples
        if gate.max_sample_student_nll is not None and sample.student_nll is not None
        and sample.student_nll > gate.max_sample_student_nll
    }
    success = all(check.success for check in checks)
    return StyleReport(success=success, on_failure=gate.on_failure, version=version, checks=checks, samples=samples,
                       sample_rejections=rejections, summary_markdown=_summary(success, gate, version, checks))


def gate_version_style(frame, gate: StyleGate | None, tokenize: Tokenize | None) -> StyleReport | None:
    """The gate's verdict on a version's sample table (polars) of staged rows with their style
    figures; None when no gate is configured. `tokenize`: the student's tokenizer, for TF-IDF
    (None: no row has a reference)."""
    if gate is None:
        return None
    scored = [row for row in frame.to_dicts()
              if row.get("status") == "ok" and row.get("assistant") and row.get("student_tokens") is not None]
    samples = [
        SampleStyle(sample_id=str(row["sample_id"]), prompt_id=row.get("prompt_id"), mode=row.get("mode"),
                    student_nll=row.get("student_nll"), student_tokens=row.get("student_tokens"),
                    teacher_token_share=teacher_token_share(row.get("spans")),
                    style_token_rate=row.get("style_token_rate"))
        for row in scored
    ]
    references = {str(row["prompt_id"]): row["student_reference"] for row in scored if row.get("student_reference")}
    if references and tokenize is not None:
        samples = with_similarities(samples, scored, references, tokenize, gate)
    return judge_style(samples, gate)

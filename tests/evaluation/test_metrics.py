"""pass@k, the student's format, and mean/spread over repeats (no models)."""

from __future__ import annotations

import math

import pytest

from tessy_core.config import FAMILY_MARKERS, ModelFamily
from tessy_core.evaluation.config import EvalSamplingConfig
from tessy_core.evaluation.metrics import (
    NO_CODE,
    NO_THINKING,
    TRUNCATED,
    UNCLOSED_THINKING,
    JudgedSample,
    model_figures,
    parse_output,
    pass_at_k,
)

QWEN = FAMILY_MARKERS[ModelFamily.qwen3]
HARMONY = FAMILY_MARKERS[ModelFamily.harmony]
CODE = "```python\nprint(int(input()) * 2)\n```"


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # 1 - C(2, 2) / C(4, 2): two of four passed, two draws
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_an_output_in_the_students_format_parses_cleanly():
    parsed = parse_output(f"<think>\nOkay, so double it.\n</think>\n\n{CODE}", QWEN, ended=True)
    assert parsed.format_ok and parsed.thinking == "Okay, so double it." and parsed.answer == CODE


@pytest.mark.parametrize(
    ("text", "ended", "errors"),
    [
        (f"Okay, so double it.\n</think>\n\n{CODE}", True, {NO_THINKING}),
        ("<think>\nOkay, so double it and keep going", False, {UNCLOSED_THINKING, TRUNCATED, NO_CODE}),
        ("<think>\nfine\n</think>\n\nprint it", True, {NO_CODE}),
        # the teacher's markers are not the student's format
        (f"<|channel|>analysis<|message|>We need to double.<|end|>{CODE}", True,
         {NO_THINKING, UNCLOSED_THINKING, NO_CODE}),
    ],
)
def test_departures_from_the_format_are_named(text, ended, errors):
    assert set(parse_output(text, QWEN, ended=ended).format_errors) == errors


def test_harmony_students_close_thinking_with_their_own_marker():
    text = f"<|channel|>analysis<|message|>We need to double.<|end|><|start|>assistant<|channel|>final<|message|>{CODE}"
    parsed = parse_output(text, HARMONY, ended=True)
    assert parsed.thinking == "We need to double." and parsed.format_errors == ()


def _sample(prompt: str, repeat: int, index: int, passed: bool, nll: float | None = None, tokens: int = 0,
            errors: tuple[str, ...] = ()) -> JudgedSample:
    return JudgedSample(prompt_id=prompt, repeat=repeat, sample_index=index, passed=passed,
                        verdict="accepted" if passed else "wrong_answer", format_errors=list(errors),
                        nll_sum=nll, nll_tokens=tokens, thinking_tokens=tokens)


def test_figures_over_repeats_have_mean_and_spread():
    samples = [
        # repeat 0: problem a passes 2/2, b 0/2 -> pass@1 0.5, pass@2 0.5
        _sample("a", 0, 0, True, 2.0, 2), _sample("a", 0, 1, True, 2.0, 2),
        _sample("b", 0, 0, False, 6.0, 2, (NO_CODE,)), _sample("b", 0, 1, False),
        # repeat 1: a 1/2, b 1/2 -> pass@1 0.5, pass@2 1.0
        _sample("a", 1, 0, True, 1.0, 1), _sample("a", 1, 1, False, 3.0, 1),
        _sample("b", 1, 0, False, None, 0, (TRUNCATED, NO_CODE)), _sample("b", 1, 1, True, 4.0, 2),
    ]
    figures = model_figures("m", samples, [1, 2])
    assert figures.problems == 2 and figures.samples == 8
    assert figures.pass_at["1"].values == [0.5, 0.5] and figures.pass_at["1"].std == 0.0
    assert figures.pass_at["2"].values == [0.5, 1.0] and figures.pass_at["2"].mean == 0.75
    assert figures.pass_at["2"].std == pytest.approx(math.sqrt(0.125), abs=1e-6)
    # token-weighted NLL per repeat: (2+2+6)/6 and (1+3+4)/4
    assert figures.style_nll.values == [pytest.approx(10 / 6, abs=1e-6), pytest.approx(2.0)]
    assert figures.format_ok.values == [0.75, 0.75]
    assert figures.format_errors[NO_CODE] == 2 and figures.format_errors[TRUNCATED] == 1


def test_pass_k_must_fit_the_samples_per_problem():
    with pytest.raises(ValueError, match="pass_k"):
        EvalSamplingConfig(samples_per_problem=2, pass_k=[1, 4])

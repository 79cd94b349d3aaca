"""Judging answers in the real sandbox, scoring thinking under the base student, seeded sampling."""

from __future__ import annotations


from tessy_core.catalog import PromptRecord
from tessy_core.config import FAMILY_MARKERS, ModelFamily
from tessy_core.evaluation.config import EvalSamplingConfig
from tessy_core.evaluation.metrics import NO_CODE, NO_THINKING
from tessy_core.evaluation.sampling import RawOutput, generate, judge

from tests.evaluation.conftest import EVAL_PROBLEMS

PROBLEMS = [PromptRecord(source="eval", **row) for row in EVAL_PROBLEMS[:2]]


def _thinking_prompt(statement: str) -> str:
    return f"<|im_start|>user\n{statement}<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_answers_are_judged_on_hidden_tests_in_the_sandbox(tiny_models):
    first, second = PROBLEMS
    # Problem 0 asks for n * 2, problem 1 for n * 3.
    times_two = "<think>\nOkay, so multiply.\n</think>\n\n```python\nprint(int(input()) * 2)\n```"
    times_three = "<think>\nHmm, so triple.\n</think>\n\n```python\nprint(int(input()) * 3)\n```"
    outputs = [
        RawOutput(first.prompt_id, 0, 0, times_two, True),
        RawOutput(first.prompt_id, 0, 1, times_three, True),
        RawOutput(second.prompt_id, 0, 0, times_three, True),
        RawOutput(second.prompt_id, 0, 1, "print(3)", False),
    ]
    judged = judge(outputs, PROBLEMS, FAMILY_MARKERS[ModelFamily.qwen3], base_path=str(tiny_models["student"]),
                   base_thinking_prompt=_thinking_prompt, device="cpu", precision="fp32", sandbox_workers=1)
    assert [s.passed for s in judged] == [True, False, True, False]
    assert [s.verdict for s in judged] == ["accepted", "wrong_answer", "accepted", "no_code"]
    assert judged[0].format_errors == [] and NO_THINKING in judged[3].format_errors and NO_CODE in judged[3].format_errors
    # Thinking scored under the base student: a positive NLL over its tokens; no thinking, no score.
    assert judged[0].nll_tokens > 0 and judged[0].nll_sum > 0
    assert judged[3].nll_sum is not None  # unclosed: the whole text counts as thinking


def test_the_same_seeds_give_the_same_answers_and_other_seeds_others(tiny_models):
    sampling = EvalSamplingConfig(max_new_tokens=12, batch_size=2, repeats=2, seed=3)
    path = str(tiny_models["student"])
    once = generate(path, PROBLEMS, sampling, device="cpu", precision="fp32")
    again = generate(path, PROBLEMS, sampling, device="cpu", precision="fp32")
    assert [o.text for o in once] == [o.text for o in again]
    assert [(o.prompt_id, o.repeat) for o in once] == [(p.prompt_id, r) for r in range(2) for p in PROBLEMS]
    other = generate(path, PROBLEMS, sampling.model_copy(update={"seed": 4}), device="cpu", precision="fp32")
    assert [o.text for o in other] != [o.text for o in once]

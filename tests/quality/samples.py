"""Sample-table rows shaped like the build's (engine record + verification), for quality tests."""

from __future__ import annotations

from typing import Any

import polars as pl

THINKING = "Okay, so we read n and the list. Compute the sum with a loop. Hmm, that is O(n)."
ANSWER = "```python\nn = int(input())\nprint(sum(map(int, input().split())))\n```"


def row(index: int, **overrides: Any) -> dict[str, Any]:
    thinking = overrides.pop("thinking", THINKING)
    answer = overrides.pop("answer", ANSWER)
    verdict = overrides.pop("verdict", "accepted")
    base = {
        "sample_id": f"s{index:04d}",
        "prompt_id": f"p{index // 2:04d}",
        "mode": "tessy",
        "status": "ok",
        "failure_reason": None,
        "problem": f"Problem {index}: print the sum of n numbers.",
        "thinking": thinking,
        "answer": answer,
        "assistant": f"<think>\n{thinking}\n</think>\n\n{answer}",
        "spans": [
            {"role": "student", "text": "Okay, so ", "tokens_kept": 3},
            {"role": "teacher", "text": "we read n and the list. Compute the sum with a loop.", "tokens_kept": 12},
            {"role": "student", "text": " Hmm, that is O(n).", "tokens_kept": 4},
        ],
        "messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}],
        "teacher_token_share": 12 / 19,
        "verification": None if verdict is None else {"verdict": verdict, "passed": 1, "total": 1},
    }
    base.update(overrides)
    return base


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


def good_rows(n: int = 8) -> list[dict[str, Any]]:
    return [row(i) for i in range(n)]

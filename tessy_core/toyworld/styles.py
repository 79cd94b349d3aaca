"""The two models' styles: the phrases that open sentences, close the thinking and introduce the answer.

Only style differs between teacher and student; the capability clauses come from `families.py` and
are shared. Every sentence starts with an opener and no opener is a prefix of another one of the same
side, so a causal classifier can tell where style ends from the tokens it has already read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    role: str
    first_openers: tuple[str, ...]
    openers: tuple[str, ...]
    # The last sentence of the thinking: pure style, written by the model that ends the thinking.
    closings: tuple[str, ...]
    answer_intros: tuple[str, ...]

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every style phrase of this side (a lexicon predictor's list), longest first."""
        unique = set(self.first_openers) | set(self.openers) | set(self.closings)
        return tuple(sorted(unique, key=lambda phrase: (-len(phrase), phrase)))


# GPT-OSS-like: terse connectives.
TEACHER_STYLE = Style(
    role="teacher",
    first_openers=("We need to note that", "Now"),
    openers=("We need to note that", "Compute:", "Thus", "Now", "Check:", "So we see that", "Note:", "Next,"),
    closings=("Let's implement.", "Ready to implement."),
    answer_intros=("Final solution.", "The solution:"),
)

# Qwen3-like: chatty, hedging. No opener ends with a period, so clauses never need recasing.
STUDENT_STYLE = Style(
    role="student",
    first_openers=("Okay, let's see,", "Okay, so"),
    openers=(
        "Hmm, so", "Wait,", "Let me think,", "Oh right,", "So basically", "I think", "Alright, so",
        "Hmm, okay,", "Let me see,", "Oh wait, right,",
    ),
    closings=(
        "Alright, I think that covers it. Let me write the code.",
        "Okay, I think I've got it. Let me put it together.",
        "Alright, that should be everything, so let me write it out.",
    ),
    answer_intros=("Here's the solution:", "So the code is:"),
)

STYLES: dict[str, Style] = {"teacher": TEACHER_STYLE, "student": STUDENT_STYLE}


def find_phrase_spans(text: str, phrases: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """Character spans of whole-word occurrences of `phrases` in `text` (longest phrase wins)."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    if not ordered:
        return []
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in ordered) + r")(?!\w)")
    return [match.span() for match in pattern.finditer(text)]

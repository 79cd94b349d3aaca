"""A small labelled corpus with a learnable structure: every sentence opens with a style phrase and
goes on with a capability clause, so both kinds of boundary follow from the tokens already read."""

from __future__ import annotations

import random

from tessy_core.predictors.labels import LabelledText

STYLE_PHRASES = ["Okay, so", "Hmm, so", "Wait,", "Let me think,", "Thus", "Now", "Check:"]
CAPABILITY_CLAUSES = [
    "compute the sum of the list",
    "we read n numbers",
    "print the maximum",
    "gcd(12, 18) = 6",
    "iterate and keep the best",
    "the answer is zero",
    "def solve(): print(sum(a))",
    "loop while b: a, b = b, a % b",
]


def labelled_corpus(n: int, seed: int) -> list[LabelledText]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        text, spans = "", []
        for _ in range(rng.randint(3, 7)):
            if text:
                text += " "
            phrase = rng.choice(STYLE_PHRASES)
            spans.append((len(text), len(text) + len(phrase)))
            text += phrase + " " + rng.choice(CAPABILITY_CLAUSES) + "."
        texts.append(LabelledText(text, spans))
    return texts

"""Text rules of the loop: word-safe cuts and the repetition detector."""

from __future__ import annotations


def first_word_end(chunk: str) -> int:
    """End of the chunk's first whitespace-delimited word: every span keeps at least that much,
    so the loop always advances (a model resuming with its own connective keeps it)."""
    position = 0
    while position < len(chunk) and chunk[position].isspace():
        position += 1
    while position < len(chunk) and not chunk[position].isspace():
        position += 1
    return position


def extend_to_word_end(chunk: str, cut: int) -> int:
    """Move a cut forward to the end of the word it falls in, so no word is split between two
    tokenizers (a token boundary inside a word differs from model to model)."""
    if cut <= 0:
        return cut
    while cut < len(chunk) and not chunk[cut].isspace() and not chunk[cut - 1].isspace():
        cut += 1
    return cut


def has_repetition_loop(text: str, *, min_words: int, max_words: int, repeats: int) -> bool:
    """True when the text ends with an n-gram (min_words..max_words words) repeated `repeats` times
    in a row: a decoding loop that will not end by itself."""
    words = text.split()
    for n in range(min_words, max_words + 1):
        span = n * repeats
        if span > len(words):
            break
        tail = words[-span:]
        unit = tail[-n:]
        if all(tail[i : i + n] == unit for i in range(0, span, n)):
            return True
    return False


class PromptTally:
    """The token count of one model's growing prompt (its template, then the shared trace).

    Counting the whole prompt before every request would tokenize a long trace thousands of times,
    so only what was appended since the last count is tokenized. Tokens can merge across the join,
    so each join may be off by a token or two: `count` returns the estimate with that error bound,
    and `exact=True` counts the whole prompt (the engine does so only near the context's end).
    """

    ERROR_PER_JOIN = 2

    def __init__(self, count_tokens):
        self._count_tokens = count_tokens
        self._text = ""
        self._tokens = 0
        self._joins = 0

    def count(self, prompt: str, *, exact: bool = False) -> tuple[int, int]:
        """(tokens, error bound) of `prompt`."""
        if not exact and self._text and prompt.startswith(self._text):
            if len(prompt) > len(self._text):
                self._tokens += self._count_tokens(prompt[len(self._text) :])
                self._joins += 1
                self._text = prompt
        else:
            self._tokens = self._count_tokens(prompt)
            self._joins = 0
            self._text = prompt
        return self._tokens, self._joins * self.ERROR_PER_JOIN

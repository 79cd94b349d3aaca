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

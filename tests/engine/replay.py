"""Backends that replay a model's raw output and serve it as vLLM's /v1/completions would.

`RawReplayBackend` holds everything a model writes for one sample after its generation prompt,
special tokens included, and answers each prompt of that sample with the rest of it: the engine's
view of the trace (its separator in place of a closed message's header) is mapped back onto the
raw output. Served like vLLM: tokens of a real tokenizer, at most `max_tokens` of them, EOS ends
the completion (not in the text), the first stop string ends it (not in the text, reported as
`stop_string`), and with `skip_special_tokens` (a server or proxy that strips them) special tokens
vanish from the text, so stop strings made of them never match.

`ClampingBackend` is a model that never stops thinking, on a server with a `max_model_len`:
requests are treated as vLLM 0.32 treats them (`get_max_tokens` in its serving layer): max_tokens
above the context or a prompt longer than it is an error (HTTP 400), a prompt plus max_tokens above
it is silently clamped to what is left. Every clamp is recorded: tessy must never cause one.
"""

from __future__ import annotations

import re
from typing import Sequence

from tessy_core.backends.base import BackendError, Completion, SamplingParams, TokenScores


class RawReplayBackend:
    def __init__(
        self,
        name: str,
        tokenizer,
        thinking_prompt: str,
        raw_output: str,
        *,
        separator: str = "\n\n",
        closed_header: str = "<|end|><|start|>assistant<|channel|>analysis<|message|>",
        skip_special_tokens: bool = False,
    ):
        self.name = name
        self.tokenizer = tokenizer
        self.thinking_prompt = thinking_prompt
        self.raw = raw_output
        self.separator = separator
        self.closed_header = closed_header
        self.skip_special_tokens = skip_special_tokens
        self.requests: list[dict] = []

    @property
    def model_id(self) -> str:
        return f"replay:{self.name}"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _position(self, written: str) -> int:
        """Where in the raw output the engine's view `written` ends."""
        for end in range(len(self.raw) + 1):
            if self.raw[:end].replace(self.closed_header, self.separator) == written:
                return end
        raise BackendError(f"{self.name}: the prompt is not a continuation of the replayed output: {written[-80:]!r}")

    async def complete(
        self, prompt: str, *, max_tokens: int, sampling: SamplingParams, stop: Sequence[str] = (), affinity_key=None
    ) -> Completion:
        assert prompt.startswith(self.thinking_prompt), prompt[:200]
        self.requests.append({"prompt": prompt, "max_tokens": max_tokens, "stop": list(stop)})
        rest = self.raw[self._position(prompt[len(self.thinking_prompt):]):]
        ids = self.tokenizer.encode(rest, add_special_tokens=False)[:max_tokens]
        finish = "length"
        if self.tokenizer.eos_token_id in ids:
            ids, finish = ids[: ids.index(self.tokenizer.eos_token_id)], "stop"
            generated = len(ids) + 1
        else:
            generated = len(ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)
        hits = sorted((text.index(s), s) for s in stop if s and s in text)
        if hits:
            cut, matched = hits[0]
            stop_ids = self.tokenizer.encode(text[:cut] + matched, add_special_tokens=False)
            return Completion(text[:cut], len(stop_ids), "stop", matched)
        return Completion(text, generated, finish)

    async def score(self, prompt: str, continuation: str, *, affinity_key=None) -> TokenScores:
        return TokenScores()

    async def aclose(self) -> None:
        return None


class ClampingBackend:
    """A model that thinks in `word`s (forever, or until it has written `think_words` of them, then
    closes its thinking), and answers with `answer_words` words after `answer_marker`; one token
    per whitespace-separated word (as the scripted backends)."""

    def __init__(
        self, name: str, max_model_len: int, *, answer_marker: str, answer_words: int = 5, word: str = "step",
        think_words: int | None = None,
    ):
        self.name = name
        self.think_words = think_words
        self.max_model_len = max_model_len
        self.answer_marker = answer_marker
        self.answer_words = answer_words
        self.word = word
        self.requests: list[dict] = []
        self.clamped: list[dict] = []

    @property
    def model_id(self) -> str:
        return f"clamping:{self.name}"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def complete(
        self, prompt: str, *, max_tokens: int, sampling: SamplingParams, stop: Sequence[str] = (), affinity_key=None
    ) -> Completion:
        prompt_tokens = self.count_tokens(prompt)
        request = {"prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "answer": prompt.endswith(self.answer_marker)}
        self.requests.append(request)
        if max_tokens > self.max_model_len:
            raise BackendError(f"HTTP 400: max_tokens={max_tokens} cannot be greater than max_model_len={self.max_model_len}")
        if prompt_tokens > self.max_model_len:
            raise BackendError(f"HTTP 400: the prompt has {prompt_tokens} tokens, more than {self.max_model_len}")
        allowed = min(max_tokens, self.max_model_len - prompt_tokens)
        if allowed < max_tokens:
            self.clamped.append({**request, "allowed": allowed})
        if request["answer"]:
            if self.answer_words <= allowed:
                return Completion(" ".join(["ans"] * self.answer_words), self.answer_words + 1, "stop")
            return Completion(" ".join(["ans"] * allowed), allowed, "length")
        # Numbered words: a trace that never repeats itself (the repetition guard stays out of it).
        written = len(re.findall(rf"(?<!\S){re.escape(self.word)}\d+(?!\S)", prompt))
        if self.think_words is not None and self.think_words - written <= allowed:
            left = self.think_words - written
            return Completion(self._words(written, left), left + 1, "stop", "end-of-thinking")
        return Completion(self._words(written, allowed), allowed, "length")

    def _words(self, start: int, n: int) -> str:
        return "".join(f" {self.word}{start + i}" for i in range(n))

    async def score(self, prompt: str, continuation: str, *, affinity_key=None) -> TokenScores:
        return TokenScores()

    async def aclose(self) -> None:
        return None

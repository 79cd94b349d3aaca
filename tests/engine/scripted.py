"""A scripted backend for narrow tests of the loop's logic (never a proof of generation quality)."""

from __future__ import annotations

import asyncio
from typing import Sequence

from tessy_core.backends.base import BackendError, Completion, SamplingParams, TokenScores


class ScriptedBackend:
    """Answers each complete() with the next scripted reply; a token is a whitespace-delimited word.

    A reply is (text, finish_reason) or an exception instance to raise.
    """

    def __init__(self, name: str, replies: Sequence[tuple[str, str] | Exception], delay_s: float = 0.0):
        self.name = name
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.delay_s = delay_s

    @property
    def model_id(self) -> str:
        return f"scripted:{self.name}"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def complete(self, prompt: str, *, max_tokens: int, sampling: SamplingParams, stop: Sequence[str] = (), affinity_key=None) -> Completion:
        self.prompts.append(prompt)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.replies:
            raise BackendError(f"{self.name}: script exhausted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        text, finish = reply
        stop_string = None
        for marker in stop:
            if marker in text:
                text, stop_string, finish = text[: text.index(marker)], marker, "stop"
                break
        return Completion(text, len(text.split()), finish, stop_string)

    async def score(self, prompt: str, continuation: str, *, affinity_key=None) -> TokenScores:
        return TokenScores()

    async def aclose(self) -> None:
        return None

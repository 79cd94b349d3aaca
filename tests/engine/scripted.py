"""A scripted backend for narrow tests of the loop's logic (never a proof of generation quality)."""

from __future__ import annotations

import asyncio
import re
from typing import Sequence

from tessy_core.backends.base import BackendError, Completion, SamplingParams, TokenScores


# What a harmony model writes after closing its analysis message to end its thinking: the header of
# its final message (the engine asks for it after every `<|end|>`; see CooperativeDecoder).
FINAL_HEADER = ("<|start|>assistant<|channel|>final<|message|>", "length")


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


class StreamingScriptedBackend(ScriptedBackend):
    """Streams each scripted reply word by word (a token = a word with its leading space) and
    stops when the watcher asks; counts the tokens it actually streamed."""

    def __init__(self, name: str, replies: Sequence[tuple[str, str] | Exception], delay_s: float = 0.0):
        super().__init__(name, replies, delay_s)
        self.tokens_streamed = 0

    async def complete_watched(self, prompt: str, *, max_tokens: int, sampling: SamplingParams, watch, stop: Sequence[str] = (), affinity_key=None) -> Completion:
        full = await self.complete(prompt, max_tokens=max_tokens, sampling=sampling, stop=stop, affinity_key=affinity_key)
        pieces = re.findall(r"\s*\S+", full.text)[:max_tokens]
        text = ""
        for piece in pieces:
            text += piece
            self.tokens_streamed += 1
            if await watch(text):
                return Completion(text, len(text.split()), "closed")
        finish = full.finish_reason if len(pieces) == len(re.findall(r"\s*\S+", full.text)) else "length"
        return Completion(text, len(pieces), finish, full.stop_string)

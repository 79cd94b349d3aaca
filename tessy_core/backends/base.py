"""The small interface between the cooperative decoding engine and an inference backend.

A backend serves ONE model. The engine only ever asks it to continue a text prompt (plain
completions: each model reads the shared trace as its own thinking), to score given text, and to
count tokens. Everything model-specific about prompt layout lives in `ChatFormat`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """One continuation. `text` excludes any matched stop string."""

    text: str
    num_tokens: int
    # "length": hit max_tokens; "stop": a stop string matched (see `stop_string`) or EOS was produced;
    # "closed": a streamed request was closed early because its watcher asked to (see `StreamingBackend`);
    # "interrupted": a stream broke after some text arrived (the text so far is still usable).
    finish_reason: str
    stop_string: str | None = None

    @property
    def ended_turn(self) -> bool:
        """True when the model stopped by itself (EOS or a stop string), not by the token limit."""
        return self.finish_reason == "stop"


@dataclass(frozen=True)
class TokenScores:
    """Per-token log-probabilities of a continuation given a prompt."""

    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    @property
    def mean_nll(self) -> float:
        return -sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("nan")


class BackendError(RuntimeError):
    """A backend could not serve a request (after its own retries/failover)."""


@runtime_checkable
class Backend(Protocol):
    """An inference backend serving one model."""

    @property
    def model_id(self) -> str:
        """A stable identity of the served model (name + revision), recorded in provenance."""
        ...

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str] = (),
        affinity_key: str | None = None,
    ) -> Completion:
        """Continue `prompt` for at most `max_tokens` tokens.

        `affinity_key` groups requests that share a growing prefix (one sample), so replicated
        backends can route them to the same server and hit its prefix cache.
        """
        ...

    async def score(self, prompt: str, continuation: str, *, affinity_key: str | None = None) -> TokenScores:
        """Log-probabilities of the tokens of `continuation` after `prompt`."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` under this model's tokenizer (no special tokens added)."""
        ...

    async def aclose(self) -> None: ...


# Called with the whole continuation so far each time a streamed request grows; True closes it.
TextWatcher = Callable[[str], Awaitable[bool]]


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that can stream a continuation and stop it early.

    One streamed request per span, closed when the boundary predictor finds the handover point,
    replaces many fixed-size requests that each resend the whole prefix.
    """

    async def complete_watched(
        self,
        prompt: str,
        *,
        max_tokens: int,
        sampling: SamplingParams,
        watch: TextWatcher,
        stop: Sequence[str] = (),
        affinity_key: str | None = None,
    ) -> Completion:
        """Like `complete`, but `watch(text_so_far)` is awaited as the text grows; when it returns
        True the request is closed and the text it was shown comes back with finish_reason "closed"."""
        ...


@runtime_checkable
class ServedContextBackend(Backend, Protocol):
    """A backend whose servers may enforce a shorter context than the model folder declares
    (vLLM's --max-model-len), and can say so."""

    async def served_context_tokens(self) -> int | None:
        """The smallest context length the servers accept for this model; None when unknown."""
        ...

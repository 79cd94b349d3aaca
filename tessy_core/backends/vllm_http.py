"""A `Backend` over vLLM's OpenAI-compatible `/v1/completions` servers, with replicas and failover.

The requests speak vLLM's dialect of the OpenAI API, not the bare API: sampling and detokenization
fields OpenAI does not have (`top_k`, `add_special_tokens`, `skip_special_tokens`,
`spaces_between_special_tokens`), continuous usage stats on streams (token counts of a stream that
is closed early), scoring as a zero-token completion of token ids with `echo` and `logprobs`, the
served context read from `/models` (`max_model_len`), and vLLM's refusal text for too many stop
strings. Another server family is another backend module, registered in `tessy_core.backends`.

Prompts are sent as text and continued verbatim (no special tokens added, none skipped in the
output: thinking markers of some families are special tokens). Token counting and the token ids
of `score` come from the model's own tokenizer, loaded locally, so they cost no request.

The HTTP client is aiohttp: a TESSY build sends a request per span (hundreds per sample) from one
event loop per build process, and that loop's CPU per request bounds the samples a process can
keep in flight. httpx's connection pool cost several times aiohttp's per request there
(docs/sizing.md §9).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import aiohttp

from tessy_core.backends.base import BackendError, Completion, SamplingParams, TextWatcher, TokenScores
from tessy_core.backends.replicas import Replica, ReplicaSet, RetryPolicy
from tessy_core.chat import load_tokenizer
from tessy_core.config import ModelConfig

T = TypeVar("T")

# A dead host must be noticed quickly even when the read timeout is generous.
_CONNECT_TIMEOUT_S = 5.0
_PROBE = aiohttp.ClientTimeout(total=5.0)
# vLLM's refusal of a request with more stop strings than it allows ("at most 4 items").
_STOP_LIMIT = re.compile(r"at most (\d+) items?")
# Status codes that mean "try again later" without the server being broken.
_TRANSIENT_STATUS = frozenset({408, 429})


class _AttemptFailed(Exception):
    """One attempt on one replica failed.

    `replica_down`: the server looks broken (take it out of rotation until a probe passes).
    `retryable`: another attempt may succeed; when False the request itself is at fault.
    """

    def __init__(self, message: str, *, replica_down: bool, retryable: bool = True):
        super().__init__(message)
        self.replica_down = replica_down
        self.retryable = retryable


class _BrokenAfterPartialReply(Exception):
    """A stream broke after useful text arrived: the replica is down, the text so far is the result."""

    def __init__(self, message: str, result: Completion, usage: dict):
        super().__init__(message)
        self.result = result
        self.usage = usage


class VllmHttpBackend:
    """Serves one model from one or more vLLM completion servers (config `backend: http`)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        served_model_name: str,
        tokenizer: Any,
        model_id: str,
        api_key: str | None = None,
        request_timeout_s: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        send_seed: bool = True,
        probe_cooldown_s: float = 5.0,
        rng: random.Random | None = None,
    ):
        self.tokenizer = tokenizer
        self._served_model_name = served_model_name
        self._model_id = model_id
        self._retry = retry
        self._send_seed = send_seed
        self._rng = rng or random.Random()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No limit on a whole request (a long answer streams for minutes); a silent server is
        # noticed by the read timeout, a dead host by the connect timeout.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(_CONNECT_TIMEOUT_S, request_timeout_s), sock_read=request_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._replicas = ReplicaSet(
            endpoints, probe=self._probe, probe_cooldown_s=probe_cooldown_s, rng=self._rng
        )
        # The most stop strings the servers accept, once one has refused more (None: not known).
        self._max_stop_strings: int | None = None

    @classmethod
    def from_config(cls, model: ModelConfig) -> "VllmHttpBackend":
        return cls(
            model.endpoints,
            served_model_name=model.served_model_name or model.name,
            tokenizer=load_tokenizer(model.path, model.revision),
            model_id=f"{model.name}@{model.revision or 'local'}",
            api_key=model.api_key,
            request_timeout_s=model.request_timeout_s,
            retry=RetryPolicy(max_retries=model.max_retries, outage_wait_s=model.outage_wait_s),
            send_seed=model.send_seed,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    def _http(self) -> aiohttp.ClientSession:
        """The HTTP session, made inside the running event loop on first use (aiohttp binds it to
        that loop; a backend used from a later loop gets a new one)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session_loop = loop
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=300),
            )
        return self._session

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    async def served_context_tokens(self) -> int | None:
        """The smallest context (`max_model_len`) the replicas' `/models` report for this model.

        A server may be started with less context than the model has (vLLM's --max-model-len).
        None when no replica answers or none reports it (then only the model folder is known).
        """

        async def one(replica: Replica) -> int | None:
            try:
                async with self._http().get(f"{replica.base_url}/models", timeout=_PROBE) as response:
                    body = await response.read()
                entries = json.loads(body).get("data") if response.status == 200 else None
            except (asyncio.TimeoutError, aiohttp.ClientError, ValueError, AttributeError):
                return None
            if not isinstance(entries, list):
                return None
            for entry in entries:
                if isinstance(entry, dict) and entry.get("id") == self._served_model_name:
                    value = entry.get("max_model_len")
                    return value if isinstance(value, int) and value > 0 else None
            return None

        reported = [v for v in await asyncio.gather(*(one(r) for r in self._replicas.replicas)) if v is not None]
        return min(reported) if reported else None

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str] = (),
        affinity_key: str | None = None,
    ) -> Completion:
        stop = self._within_stop_limit(stop)
        body = self._completion_body(prompt, max_tokens, sampling, stop)
        try:
            return await self._request(body, affinity_key, lambda payload: _parse_completion(payload, max_tokens))
        except BackendError as error:
            if not self._learn_stop_limit(str(error), len(stop)):
                raise
        # The server takes fewer stop strings (vLLM: 4 unless VLLM_MAX_STOP_STRINGS says more): the
        # first ones (end-of-thinking markers, then the most frequent handover stops) go.
        body = self._completion_body(prompt, max_tokens, sampling, self._within_stop_limit(stop))
        return await self._request(body, affinity_key, lambda payload: _parse_completion(payload, max_tokens))

    def _within_stop_limit(self, stop: Sequence[str]) -> list[str]:
        stop = list(stop)
        return stop if self._max_stop_strings is None else stop[: self._max_stop_strings]

    def _learn_stop_limit(self, message: str, sent: int) -> bool:
        """Whether `message` is a server refusing `sent` stop strings; remembers its limit."""
        match = _STOP_LIMIT.search(message)
        if "stop" not in message or match is None or int(match.group(1)) >= sent:
            return False
        self._max_stop_strings = int(match.group(1))
        return True

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
        body = self._completion_body(prompt, max_tokens, sampling, self._within_stop_limit(stop))
        body["stream"] = True
        # Token counts with every chunk: a stream closed early still reports what it cost.
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        return await self._with_failover(
            affinity_key, lambda replica: self._stream_completions(replica, body, max_tokens, watch)
        )

    def _completion_body(self, prompt: str, max_tokens: int, sampling: SamplingParams, stop: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._served_model_name,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "stop": list(stop),
            "add_special_tokens": False,
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
        }
        if self._send_seed and sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    async def score(self, prompt: str, continuation: str, *, affinity_key: str | None = None) -> TokenScores:
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        continuation_ids = self.tokenizer.encode(continuation, add_special_tokens=False)
        if not continuation_ids:
            return TokenScores()
        if not prompt_ids:
            raise ValueError("score needs a non-empty prompt: the first token has no context to be scored in")
        body = {
            "model": self._served_model_name,
            # Token ids, not text: the prompt/continuation boundary stays where the local
            # tokenizer put it (text would be re-tokenized across the boundary).
            "prompt": prompt_ids + continuation_ids,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 0,
        }
        logprobs = await self._request(
            body, affinity_key, lambda payload: _parse_echo_logprobs(payload, len(continuation_ids))
        )
        return TokenScores(self.tokenizer.convert_ids_to_tokens(continuation_ids), logprobs)

    def stats(self) -> dict[str, Any]:
        """Per-replica counters (requests, errors, failovers, tokens) and health, for cost reports."""
        return {"model_id": self._model_id, "replicas": self._replicas.stats()}

    async def aclose(self) -> None:
        await self._replicas.aclose()
        if self._session is not None:
            await self._session.close()

    async def _request(self, body: dict[str, Any], affinity_key: str | None, parse: Callable[[dict], T]) -> T:
        """POST `body` to /completions on a chosen replica, failing over until `parse` accepts a reply."""

        async def once(replica: Replica) -> tuple[T, dict]:
            payload = await self._post_completions(replica, body)
            return parse(payload), payload.get("usage") or {}

        return await self._with_failover(affinity_key, once)

    async def _with_failover(
        self, affinity_key: str | None, once: Callable[[Replica], Awaitable[tuple[T, dict]]]
    ) -> T:
        """Run `once` on a chosen replica, failing over (with backoff) until it succeeds.

        `once` returns its result and the reply's usage, or raises `_AttemptFailed`.
        """
        failed_on: list[Replica] = []
        errors: list[str] = []
        outage_deadline: float | None = None  # set when this request first finds every replica down
        for attempt in range(self._retry.max_retries + 1):
            if attempt and self._retry.outage_wait_s > 0 and self._replicas.all_down:
                if outage_deadline is None:
                    outage_deadline = time.monotonic() + self._retry.outage_wait_s
                if not await self._replicas.wait_for_recovery(outage_deadline):
                    raise BackendError(
                        f"model {self._served_model_name!r}: every replica stayed down for "
                        f"{self._retry.outage_wait_s:g} s (outage_wait_s); no replica served the request; "
                        f"errors: {'; '.join(errors)}"
                    )
            elif attempt:
                await asyncio.sleep(self._retry.delay_s(attempt, self._rng))
            replica = self._replicas.choose(affinity_key, avoid=failed_on)
            try:
                with self._replicas.attempt(replica):
                    result, usage = await once(replica)
            except _BrokenAfterPartialReply as broken:
                self._replicas.record_failure(replica, str(broken), replica_down=True, will_retry=False)
                self._replicas.record_tokens(replica, broken.usage)
                return broken.result
            except _AttemptFailed as failure:
                will_retry = failure.retryable and attempt < self._retry.max_retries
                self._replicas.record_failure(
                    replica, str(failure), replica_down=failure.replica_down, will_retry=will_retry
                )
                if not failure.retryable:
                    raise BackendError(
                        f"model {self._served_model_name!r} at {replica.base_url} rejected the request: {failure}"
                    ) from failure
                failed_on.append(replica)
                errors.append(f"{replica.base_url}: {failure}")
                continue
            self._replicas.record_tokens(replica, usage)
            self._replicas.record_success(replica)
            return result
        raise BackendError(
            f"model {self._served_model_name!r}: no replica served the request after "
            f"{self._retry.max_retries + 1} attempts on {[r.base_url for r in self._replicas.replicas]}; "
            f"errors: {'; '.join(errors)}"
        )

    async def _post_completions(self, replica: Replica, body: dict[str, Any]) -> dict:
        try:
            async with self._http().post(f"{replica.base_url}/completions", json=body) as response:
                status, text = response.status, _text(await response.read())
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _AttemptFailed(_transport_failure(exc), replica_down=True) from exc
        _raise_for_status(status, text)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _AttemptFailed(f"reply is not JSON: {text[:200]!r}", replica_down=False) from exc

    async def _stream_completions(
        self, replica: Replica, body: dict[str, Any], max_tokens: int, watch: TextWatcher
    ) -> tuple[Completion, dict]:
        """One streamed request; closing the response makes vLLM abort the generation."""
        stream = _StreamState()
        try:
            async with self._http().post(f"{replica.base_url}/completions", json=body) as response:
                if response.status >= 400:
                    _raise_for_status(response.status, _text(await response.read()))
                async for line in response.content:
                    if not stream.feed(_text(line).rstrip("\r\n")):
                        break
                    if stream.grew and await watch(stream.text):
                        response.close()  # drops the connection, not back to the pool: vLLM aborts
                        return stream.completion("closed"), stream.usage
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            what = _transport_failure(exc)
            if not stream.text:
                raise _AttemptFailed(what, replica_down=True) from exc
            # The text that arrived is good: hand it back so the caller continues from it (its next
            # request fails over); only the replica is taken out.
            raise _BrokenAfterPartialReply(f"stream broke: {what}", stream.completion("interrupted"), stream.usage) from exc
        return stream.finished(max_tokens), stream.usage

    async def _probe(self, replica: Replica) -> bool:
        try:
            async with self._http().get(replica.health_url, timeout=_PROBE) as response:
                return response.status == 200
        except (asyncio.TimeoutError, aiohttp.ClientError):
            return False


class _StreamState:
    """Accumulates the server-sent events of one streamed completion."""

    def __init__(self) -> None:
        self.text = ""
        self.num_tokens = 0
        self.chunks = 0
        self.finish_reason: str | None = None
        self.stop_reason: Any = None
        self.usage: dict = {}
        self.grew = False

    def feed(self, line: str) -> bool:
        """Take one SSE line; False once the stream says it is done."""
        self.grew = False
        if not line.startswith("data:"):
            return True
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return False
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise _AttemptFailed(f"stream event is not JSON: {data[:200]!r}", replica_down=False) from exc
        if isinstance(event, dict) and "error" in event:
            raise _AttemptFailed(f"stream error: {str(event['error'])[:300]}", replica_down=True)
        usage = event.get("usage") if isinstance(event, dict) else None
        if isinstance(usage, dict):
            self.usage = usage
            if isinstance(usage.get("completion_tokens"), int):
                self.num_tokens = usage["completion_tokens"]
        choices = event.get("choices") if isinstance(event, dict) else None
        if choices:
            choice = choices[0]
            delta = choice.get("text") or ""
            if delta:
                self.text += delta
                self.chunks += 1
                self.grew = True
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
                self.stop_reason = choice.get("stop_reason")
        return True

    def completion(self, finish_reason: str) -> Completion:
        # Servers without per-chunk usage stream about one token per chunk.
        return Completion(self.text, self.num_tokens or self.chunks, finish_reason)

    def finished(self, max_tokens: int) -> Completion:
        if self.finish_reason not in ("stop", "length"):
            raise _AttemptFailed(f"stream ended with finish_reason={self.finish_reason!r}", replica_down=False)
        num_tokens = self.num_tokens or self.chunks
        if self.finish_reason == "length" and num_tokens == 0 and max_tokens > 0:
            raise _AttemptFailed("empty completion with finish_reason 'length'", replica_down=False)
        return Completion(
            self.text,
            num_tokens,
            self.finish_reason,
            stop_string=self.stop_reason if isinstance(self.stop_reason, str) else None,
        )


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _transport_failure(exc: BaseException) -> str:
    """What went wrong on the wire, for the replica's error log and the final error."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _raise_for_status(status: int, text: str) -> None:
    if status >= 500:
        raise _AttemptFailed(f"HTTP {status}: {_error_detail(text)}", replica_down=True)
    if status in _TRANSIENT_STATUS:
        raise _AttemptFailed(f"HTTP {status}: {_error_detail(text)}", replica_down=False)
    if status >= 400:
        # The request itself is wrong (too long, bad parameter): no replica would accept it.
        raise _AttemptFailed(f"HTTP {status}: {_error_detail(text)}", replica_down=False, retryable=False)


def _first_choice(payload: dict) -> dict:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _AttemptFailed(f"reply has no choices: {str(payload)[:200]}", replica_down=False)
    return choices[0]


def _parse_completion(payload: dict, max_tokens: int) -> Completion:
    choice = _first_choice(payload)
    finish_reason = choice.get("finish_reason")
    if finish_reason not in ("stop", "length"):
        raise _AttemptFailed(f"generation ended with finish_reason={finish_reason!r}", replica_down=False)
    num_tokens = (payload.get("usage") or {}).get("completion_tokens")
    if not isinstance(num_tokens, int):
        raise _AttemptFailed("reply has no usage.completion_tokens", replica_down=False)
    if finish_reason == "length" and num_tokens == 0 and max_tokens > 0:
        # A "length" stop without a single token makes no progress; a caller looping on
        # completions would spin forever on it.
        raise _AttemptFailed("empty completion with finish_reason 'length'", replica_down=False)
    stop_reason = choice.get("stop_reason")
    return Completion(
        text=choice.get("text") or "",
        num_tokens=num_tokens,
        finish_reason=finish_reason,
        # vLLM reports a matched stop string as text and a stop token as its id.
        stop_string=stop_reason if isinstance(stop_reason, str) else None,
    )


def _parse_echo_logprobs(payload: dict, num_scored: int) -> list[float]:
    """The log-probabilities of the last `num_scored` echoed prompt tokens."""
    logprobs = _first_choice(payload).get("logprobs") or {}
    token_logprobs = logprobs.get("token_logprobs") or []
    scored = token_logprobs[-num_scored:]
    if len(scored) != num_scored or any(lp is None for lp in scored):
        raise _AttemptFailed(
            f"reply lacks prompt logprobs for {num_scored} tokens (got {len(token_logprobs)} entries)",
            replica_down=False,
        )
    return [float(lp) for lp in scored]


def _error_detail(text: str) -> str:
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:300]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:300]
    return str(error or text)[:300]

"""Request/response mapping and failover of `VllmHttpBackend` against an in-process fake transport.

The real-server proof is `tests/workers/test_vllm_servers.py`; this file pins the narrow logic.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Callable

import httpx
import pytest

from tessy_core.backends import BackendError, SamplingParams
from tessy_core.backends.vllm_http import VllmHttpBackend
from tessy_core.backends.replicas import RetryPolicy

A, B = "http://replica-a:8000/v1", "http://replica-b:8000/v1"
FAST_RETRY = RetryPolicy(max_retries=3, backoff_base_s=0.001, backoff_max_s=0.002, outage_wait_s=0)


class CharTokenizer:
    """One token per character: enough to check which ids are sent and which logprobs come back."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [chr(i) for i in ids]


def completion_reply(text="abc", *, tokens=3, finish="length", stop_reason=None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason}],
            "usage": {"prompt_tokens": 5, "completion_tokens": tokens},
        },
    )


Handler = Callable[[httpx.Request], httpx.Response]


def make_backend(handlers: dict[str, Handler], *, send_seed=True, retry=FAST_RETRY, cooldown_s=60.0):
    """A backend whose replica `host` is answered by `handlers[host]`; records every request."""
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handlers[request.url.host](request)

    backend = VllmHttpBackend(
        [f"http://{host}:8000/v1" for host in handlers],
        served_model_name="student",
        tokenizer=CharTokenizer(),
        model_id="student@local",
        api_key="secret",
        retry=retry,
        send_seed=send_seed,
        probe_cooldown_s=cooldown_s,
        transport=httpx.MockTransport(route),
        rng=random.Random(0),
    )
    return backend, seen


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def complete(backend, key=None, **kwargs):
    return await backend.complete("prompt", max_tokens=8, sampling=SamplingParams(seed=7), affinity_key=key, **kwargs)


async def test_completion_request_and_reply_mapping():
    backend, seen = make_backend({"replica-a": lambda r: completion_reply("x</think", tokens=4, finish="stop", stop_reason="</think>")})
    result = await complete(backend, stop=["</think>"])
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/completions"
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert body == {
        "model": "student", "prompt": "prompt", "max_tokens": 8, "temperature": 0.7, "top_p": 0.8,
        "top_k": 20, "stop": ["</think>"], "seed": 7, "add_special_tokens": False,
        "skip_special_tokens": False, "spaces_between_special_tokens": False,
    }  # fmt: skip
    assert (result.text, result.num_tokens, result.finish_reason, result.stop_string) == ("x</think", 4, "stop", "</think>")
    assert result.ended_turn
    await backend.aclose()


async def test_seed_is_left_out_when_disabled_and_stop_token_ids_are_not_stop_strings():
    backend, seen = make_backend({"replica-a": lambda r: completion_reply(finish="stop", stop_reason=151645)}, send_seed=False)
    result = await complete(backend)
    assert "seed" not in json.loads(seen[0].content)
    assert result.finish_reason == "stop" and result.stop_string is None
    await backend.aclose()


async def test_score_sends_concatenated_ids_and_returns_continuation_logprobs():
    def echo(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["prompt"]
        logprobs = [None] + [-0.5 - i for i in range(len(ids) - 1)]
        return httpx.Response(200, json={"choices": [{"text": "", "finish_reason": "length", "logprobs": {"token_logprobs": logprobs}}], "usage": {}})

    backend, seen = make_backend({"replica-a": echo})
    scores = await backend.score("ab", "cd", affinity_key="k")
    body = json.loads(seen[0].content)
    assert body["prompt"] == [ord("a"), ord("b"), ord("c"), ord("d")]
    assert body["echo"] is True and body["max_tokens"] == 0 and body["logprobs"] == 0
    assert scores.tokens == ["c", "d"] and scores.logprobs == [-1.5, -2.5]
    assert (await backend.score("ab", "")).logprobs == []
    with pytest.raises(ValueError):
        await backend.score("", "cd")
    await backend.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        refuse,
        lambda r: httpx.Response(500, json={"error": {"message": "EngineDeadError"}}),
        lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("timed out", request=r)),
        lambda r: (_ for _ in ()).throw(httpx.RemoteProtocolError("peer closed", request=r)),
    ],
    ids=["refused", "http500", "timeout", "reset"],
)
async def test_broken_replica_fails_over_and_is_taken_out(failure):
    backend, seen = make_backend({"replica-a": failure, "replica-b": lambda r: completion_reply()})
    # Pick keys that hash to the broken replica so the failover path is exercised.
    keys = [k for k in (f"k{i}" for i in range(50)) if backend._replicas.choose(k).base_url == A][:5]
    results = [await complete(backend, key) for key in keys]
    assert all(r.text == "abc" for r in results)
    stats = backend.stats()["replicas"]
    assert stats[A]["healthy"] is False
    # Only the first request touched A: afterwards it is out of rotation.
    assert stats[A]["requests"] == 1 and stats[A]["errors"] == 1 and stats[A]["failovers"] == 1
    assert stats[B]["requests"] == 5 and stats[B]["completion_tokens"] == 15
    await backend.aclose()


async def test_replica_comes_back_after_a_passing_health_probe():
    state = {"up": False}

    def flaky(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            return refuse(request)
        if request.url.path == "/health":
            return httpx.Response(200)
        return completion_reply("from-a")

    backend, seen = make_backend({"replica-a": flaky, "replica-b": lambda r: completion_reply("from-b")}, cooldown_s=0.0)
    key = next(k for k in (f"k{i}" for i in range(50)) if backend._replicas.choose(k).base_url == A)
    assert (await complete(backend, key)).text == "from-b"
    state["up"] = True
    await complete(backend, key)  # starts the probe of A (its cooldown is over) in the background
    await asyncio.sleep(0.01)
    assert backend.stats()["replicas"][A]["healthy"] is True
    # The moved sample stays on B (its prefix is cached there); new samples reach A again.
    assert (await complete(backend, key)).text == "from-b"
    assert "from-a" in {(await complete(backend, f"new-{i}")).text for i in range(10)}
    assert any(r.url.path == "/health" and r.url.host == "replica-a" for r in seen)
    await backend.aclose()


async def test_empty_length_completion_is_retried_then_reported():
    replies = iter([completion_reply("", tokens=0, finish="length"), completion_reply("ok", tokens=2)])
    backend, _ = make_backend({"replica-a": lambda r: next(replies)})
    assert (await complete(backend)).text == "ok"
    stats = backend.stats()["replicas"][A]
    assert stats["errors"] == 1 and stats["healthy"] is True  # the server answered: not taken out
    await backend.aclose()

    backend, _ = make_backend({"replica-a": lambda r: completion_reply("", tokens=0, finish="length")})
    with pytest.raises(BackendError, match="empty completion"):
        await complete(backend)
    await backend.aclose()


async def test_bad_request_is_not_retried():
    backend, seen = make_backend({"replica-a": lambda r: httpx.Response(400, json={"error": {"message": "prompt too long"}})})
    with pytest.raises(BackendError, match="rejected the request: HTTP 400: prompt too long"):
        await complete(backend)
    assert len(seen) == 1
    await backend.aclose()


async def test_all_replicas_down_raises_with_every_replica_and_error():
    backend, seen = make_backend(
        {"replica-a": refuse, "replica-b": lambda r: httpx.Response(503, text="overloaded")},
        retry=RetryPolicy(max_retries=2, backoff_base_s=0.001, outage_wait_s=0),
    )
    with pytest.raises(BackendError) as raised:
        await complete(backend, "k")
    message = str(raised.value)
    assert "after 3 attempts" in message and A in message and B in message
    assert "ConnectError" in message and "HTTP 503: overloaded" in message
    assert len(seen) == 3
    await backend.aclose()


async def test_requests_wait_out_an_outage_of_every_replica_without_spending_retries():
    """The only server restarts: requests in flight wait for its health check, then go on."""
    state = {"up": False, "completions": 0}

    def restarting(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/health":
            return httpx.Response(200)
        state["completions"] += 1
        return completion_reply("back")

    backend, seen = make_backend(
        {"replica-a": restarting},
        retry=RetryPolicy(max_retries=1, backoff_base_s=0.001, outage_wait_s=30), cooldown_s=0.0,
    )
    waiting = [asyncio.create_task(complete(backend, f"k{i}")) for i in range(3)]
    await asyncio.sleep(0.2)  # far more than their single retry's backoff: they wait, not fail
    assert not any(task.done() for task in waiting)
    state["up"] = True
    assert [(await task).text for task in waiting] == ["back"] * 3
    assert state["completions"] == 3
    assert backend.stats()["replicas"][A]["healthy"] is True
    assert any(r.url.path == "/health" for r in seen)
    await backend.aclose()


async def test_an_outage_longer_than_the_wait_fails_the_request_saying_so():
    backend, _ = make_backend(
        {"replica-a": refuse}, retry=RetryPolicy(max_retries=3, backoff_base_s=0.001, outage_wait_s=0.3), cooldown_s=0.0
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(BackendError, match=r"every replica stayed down for 0.3 s \(outage_wait_s\).*ConnectError"):
        await complete(backend)
    assert asyncio.get_running_loop().time() - started >= 0.3
    await backend.aclose()


async def test_served_context_is_the_smallest_max_model_len_the_replicas_report():
    def models(limit):
        def reply(request: httpx.Request) -> httpx.Response:
            assert request.url.path == "/v1/models"
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "other", "max_model_len": 64}, {"id": "student", "max_model_len": limit}]})
        return reply

    backend, _ = make_backend({"replica-a": models(4096), "replica-b": models(1024), "replica-c": refuse})
    assert await backend.served_context_tokens() == 1024
    await backend.aclose()
    # Nothing known: a server that does not report it, one that answers garbage, none answering.
    for handler in (models(None), lambda r: httpx.Response(200, text="not json"), refuse):
        backend, _ = make_backend({"replica-a": handler})
        assert await backend.served_context_tokens() is None
        await backend.aclose()


async def test_count_tokens_is_local():
    backend, seen = make_backend({"replica-a": refuse})
    assert backend.count_tokens("hello") == 5 and seen == []
    await backend.aclose()


def sse_reply(deltas: list[str], *, finish="length", usage=True, stop_reason=None) -> httpx.Response:
    """A streamed /completions reply: one event per delta, continuous usage stats, then [DONE]."""
    events = []
    for i, delta in enumerate(deltas, 1):
        choice = {"index": 0, "text": delta, "finish_reason": finish if i == len(deltas) else None,
                  "stop_reason": stop_reason if i == len(deltas) else None}
        event = {"choices": [choice]}
        if usage:
            event["usage"] = {"prompt_tokens": 5, "completion_tokens": i}
        events.append(f"data: {json.dumps(event)}\n\n")
    events.append("data: [DONE]\n\n")
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(events).encode())


async def watched(backend, watch, key=None):
    return await backend.complete_watched("prompt", max_tokens=50, sampling=SamplingParams(), watch=watch, affinity_key=key)


async def test_stream_is_closed_when_the_watcher_says_so():
    backend, seen = make_backend({"replica-a": lambda r: sse_reply(["one", " two", " three", " four"])})
    shown: list[str] = []

    async def watch(text: str) -> bool:
        shown.append(text)
        return text.endswith("two")

    result = await watched(backend, watch)
    assert (result.text, result.num_tokens, result.finish_reason, result.ended_turn) == ("one two", 2, "closed", False)
    assert shown == ["one", "one two"]
    body = json.loads(seen[0].content)
    assert body["stream"] is True and body["stream_options"]["continuous_usage_stats"] is True
    assert backend.stats()["replicas"][A]["completion_tokens"] == 2
    await backend.aclose()


async def test_stream_to_the_end_reports_finish_and_stop_string():
    backend, _ = make_backend({"replica-a": lambda r: sse_reply(["a", "b", ""], finish="stop", stop_reason="</think>")})

    async def never(text: str) -> bool:
        return False

    result = await watched(backend, never)
    assert (result.text, result.num_tokens, result.finish_reason, result.stop_string) == ("ab", 3, "stop", "</think>")
    # Without usage stats every event with text counts as one token.
    backend, _ = make_backend({"replica-a": lambda r: sse_reply(["a", "b", "c"], usage=False)})
    assert (await watched(backend, never)).num_tokens == 3
    await backend.aclose()


class _BreakingStream(httpx.AsyncByteStream):
    """Sends some events, then the connection drops."""

    def __init__(self, events: list[str]):
        self.events = events

    async def __aiter__(self):
        for event in self.events:
            yield event.encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_a_stream_that_breaks_midway_returns_its_text_and_takes_the_replica_out():
    events = [f"data: {json.dumps({'choices': [{'index': 0, 'text': t, 'finish_reason': None}], 'usage': {'completion_tokens': i}})}\n\n"
              for i, t in enumerate(["x", " y"], 1)]
    backend, seen = make_backend({
        "replica-a": lambda r: httpx.Response(200, stream=_BreakingStream(events)),
        "replica-b": lambda r: sse_reply(["from-b"]),
    })
    key = next(k for k in (f"k{i}" for i in range(50)) if backend._replicas.choose(k).base_url == A)

    async def never(text: str) -> bool:
        return False

    partial = await watched(backend, never, key)
    assert (partial.text, partial.num_tokens, partial.finish_reason) == ("x y", 2, "interrupted")
    assert backend.stats()["replicas"][A]["healthy"] is False
    # The sample's next request continues on the other replica.
    assert (await watched(backend, never, key)).text == "from-b"
    await backend.aclose()


async def test_a_stream_that_fails_before_any_text_fails_over():
    backend, seen = make_backend({
        "replica-a": lambda r: httpx.Response(500, json={"error": {"message": "EngineDeadError"}}),
        "replica-b": lambda r: sse_reply(["ok"]),
    })
    key = next(k for k in (f"k{i}" for i in range(50)) if backend._replicas.choose(k).base_url == A)

    async def never(text: str) -> bool:
        return False

    assert (await watched(backend, never, key)).text == "ok"
    assert backend.stats()["replicas"][A]["errors"] == 1
    await backend.aclose()


async def test_a_server_that_accepts_but_never_answers_times_out_and_is_reported():
    """A hung server (a real socket that accepts and stays silent) is never waited on forever."""
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader, writer):
        accepted.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = VllmHttpBackend(
        [f"http://127.0.0.1:{port}/v1"], served_model_name="m", tokenizer=CharTokenizer(), model_id="m",
        request_timeout_s=0.3, retry=RetryPolicy(max_retries=1, backoff_base_s=0.001, outage_wait_s=0),
    )

    async def never(text: str) -> bool:
        return False

    started = asyncio.get_running_loop().time()
    with pytest.raises(BackendError, match="timed out"):
        await backend.complete("p", max_tokens=4, sampling=SamplingParams())
    with pytest.raises(BackendError, match="timed out"):
        await backend.complete_watched("p", max_tokens=4, sampling=SamplingParams(), watch=never)
    assert asyncio.get_running_loop().time() - started < 5
    assert backend.stats()["replicas"][f"http://127.0.0.1:{port}/v1"]["healthy"] is False
    await backend.aclose()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_server_that_takes_fewer_stop_strings_gets_the_first_ones_and_is_remembered():
    """vLLM refuses more than VLLM_MAX_STOP_STRINGS (default 4) stop strings with a 400."""

    def limited(request: httpx.Request) -> httpx.Response:
        stop = json.loads(request.content)["stop"]
        if len(stop) > 4:
            return httpx.Response(400, json={"error": {"message": (
                "2 validation errors: {'type': 'too_long', 'loc': 'body.stop', "
                f"'msg': 'List should have at most 4 items after validation, not {len(stop)}'}}")}})
        return completion_reply("a", tokens=1, finish="stop", stop_reason=stop[-1])

    backend, seen = make_backend({"replica-a": limited})
    stops = ["</think>", " Thus", " Now", " Check:", " Note:", " Next,"]
    result = await complete(backend, stop=stops)
    assert result.stop_string == " Check:"
    assert [len(json.loads(r.content)["stop"]) for r in seen] == [6, 4]
    await complete(backend, stop=stops)  # the limit is known now: one request
    assert [len(json.loads(r.content)["stop"]) for r in seen] == [6, 4, 4]
    await backend.aclose()

"""Request/response mapping and failover of `VllmHttpBackend` against small in-process HTTP
servers (aiohttp, on 127.0.0.1), one per replica, each answered by a test's handler.

The real-server proof is `tests/workers/test_vllm_servers.py`; this file pins the narrow logic.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import socket
from dataclasses import dataclass
from typing import Callable

import pytest
from aiohttp import web

from tessy_core.backends import BackendError, SamplingParams
from tessy_core.backends.replicas import RetryPolicy
from tessy_core.backends.vllm_http import VllmHttpBackend

FAST_RETRY = RetryPolicy(max_retries=3, backoff_base_s=0.001, backoff_max_s=0.002, outage_wait_s=0)


class CharTokenizer:
    """One token per character: enough to check which ids are sent and which logprobs come back."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [chr(i) for i in ids]


@dataclass
class Seen:
    """A request one of the servers received."""

    host: str  # the replica's name in the test
    path: str
    headers: dict
    content: bytes


class Drop(Exception):
    """Raised by a handler: the server closes the connection without an answer (it died mid-request)."""


def refuse(request: Seen):
    raise Drop


def hang(seconds: float = 30.0):
    async def handler(request: Seen):
        await asyncio.sleep(seconds)
        return web.Response()

    return handler


def completion_reply(text="abc", *, tokens=3, finish="length", stop_reason=None) -> web.Response:
    return web.json_response({
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason}],
        "usage": {"prompt_tokens": 5, "completion_tokens": tokens},
    })


Handler = Callable[[Seen], web.StreamResponse]
# A replica whose port has nothing listening: connections are refused.
NOT_LISTENING = None


class Replicas:
    """Real HTTP servers on 127.0.0.1, one per replica name; every request they receive is recorded."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.seen: list[Seen] = []

    async def start(self, handlers: dict[str, Handler | None]) -> dict[str, str]:
        """Serve each of `handlers`; their names' URLs."""
        urls = {}
        for host, handler in handlers.items():
            if handler is NOT_LISTENING:
                with socket.socket() as probe:  # a port that was free a moment ago: refused
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
            else:
                port = await self._serve(host, handler)
            urls[host] = f"http://127.0.0.1:{port}/v1"
        return urls

    async def _serve(self, host: str, handler: Handler) -> int:
        async def route(request: web.Request) -> web.StreamResponse:
            seen = Seen(host, request.path, dict(request.headers), await request.read())
            self.seen.append(seen)
            try:
                reply = handler(seen)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Drop:
                request.transport.close()  # the reply below goes nowhere
                return web.Response()
            if callable(reply):  # a streaming handler: writes its own reply
                return await reply(request)
            return reply

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", route)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        return runner.addresses[0][1]

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


@pytest.fixture
async def replicas():
    servers = Replicas()
    yield servers
    await servers.close()


async def make_backend(replicas: Replicas, handlers: dict[str, Handler | None], *, send_seed=True, retry=FAST_RETRY,
                       cooldown_s=60.0, request_timeout_s=10.0):
    """A backend over one server per name in `handlers`; returns it, the requests the servers saw,
    and each name's URL."""
    urls = await replicas.start(handlers)
    backend = VllmHttpBackend(
        list(urls.values()),
        served_model_name="student",
        tokenizer=CharTokenizer(),
        model_id="student@local",
        api_key="secret",
        request_timeout_s=request_timeout_s,
        retry=retry,
        send_seed=send_seed,
        probe_cooldown_s=cooldown_s,
        rng=random.Random(0),
    )
    return backend, replicas.seen, urls


def key_on(backend: VllmHttpBackend, url: str) -> str:
    """A sample key the backend sends to the replica at `url`."""
    return next(k for k in (f"k{i}" for i in range(200)) if backend._replicas.choose(k).base_url == url)


async def complete(backend, key=None, **kwargs):
    return await backend.complete("prompt", max_tokens=8, sampling=SamplingParams(seed=7), affinity_key=key, **kwargs)


async def test_completion_request_and_reply_mapping(replicas):
    backend, seen, _ = await make_backend(
        replicas, {"replica-a": lambda r: completion_reply("x</think", tokens=4, finish="stop", stop_reason="</think>")}
    )
    result = await complete(backend, stop=["</think>"])
    body = json.loads(seen[0].content)
    assert seen[0].path == "/v1/completions"
    assert seen[0].headers["Authorization"] == "Bearer secret"
    assert body == {
        "model": "student", "prompt": "prompt", "max_tokens": 8, "temperature": 0.7, "top_p": 0.8,
        "top_k": 20, "stop": ["</think>"], "seed": 7, "add_special_tokens": False,
        "skip_special_tokens": False, "spaces_between_special_tokens": False,
    }  # fmt: skip
    assert (result.text, result.num_tokens, result.finish_reason, result.stop_string) == ("x</think", 4, "stop", "</think>")
    assert result.ended_turn
    await backend.aclose()


async def test_seed_is_left_out_when_disabled_and_stop_token_ids_are_not_stop_strings(replicas):
    backend, seen, _ = await make_backend(
        replicas, {"replica-a": lambda r: completion_reply(finish="stop", stop_reason=151645)}, send_seed=False
    )
    result = await complete(backend)
    assert "seed" not in json.loads(seen[0].content)
    assert result.finish_reason == "stop" and result.stop_string is None
    await backend.aclose()


async def test_score_sends_concatenated_ids_and_returns_continuation_logprobs(replicas):
    def echo(request: Seen) -> web.Response:
        ids = json.loads(request.content)["prompt"]
        logprobs = [None] + [-0.5 - i for i in range(len(ids) - 1)]
        return web.json_response({"choices": [{"text": "", "finish_reason": "length", "logprobs": {"token_logprobs": logprobs}}], "usage": {}})

    backend, seen, _ = await make_backend(replicas, {"replica-a": echo})
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
        NOT_LISTENING,
        lambda r: web.json_response({"error": {"message": "EngineDeadError"}}, status=500),
        hang(),
        refuse,
    ],
    ids=["refused", "http500", "timeout", "reset"],
)
async def test_broken_replica_fails_over_and_is_taken_out(replicas, failure):
    backend, _, urls = await make_backend(
        replicas, {"replica-a": failure, "replica-b": lambda r: completion_reply()}, request_timeout_s=0.3
    )
    a, b = urls["replica-a"], urls["replica-b"]
    # Keys that hash to the broken replica, so the failover path is exercised.
    keys = [k for k in (f"k{i}" for i in range(50)) if backend._replicas.choose(k).base_url == a][:5]
    results = [await complete(backend, key) for key in keys]
    assert all(r.text == "abc" for r in results)
    stats = backend.stats()["replicas"]
    assert stats[a]["healthy"] is False
    # Only the first request touched A: afterwards it is out of rotation.
    assert stats[a]["requests"] == 1 and stats[a]["errors"] == 1 and stats[a]["failovers"] == 1
    assert stats[b]["requests"] == 5 and stats[b]["completion_tokens"] == 15
    await backend.aclose()


async def test_replica_comes_back_after_a_passing_health_probe(replicas):
    state = {"up": False}

    def flaky(request: Seen) -> web.Response:
        if not state["up"]:
            raise Drop
        if request.path == "/health":
            return web.Response()
        return completion_reply("from-a")

    backend, seen, urls = await make_backend(
        replicas, {"replica-a": flaky, "replica-b": lambda r: completion_reply("from-b")}, cooldown_s=0.0
    )
    a = urls["replica-a"]
    key = key_on(backend, a)
    assert (await complete(backend, key)).text == "from-b"
    state["up"] = True
    await complete(backend, key)  # starts the probe of A (its cooldown is over) in the background
    for _ in range(100):
        if backend.stats()["replicas"][a]["healthy"]:
            break
        await asyncio.sleep(0.01)
    assert backend.stats()["replicas"][a]["healthy"] is True
    # The moved sample stays on B (its prefix is cached there); new samples reach A again.
    assert (await complete(backend, key)).text == "from-b"
    assert "from-a" in {(await complete(backend, f"new-{i}")).text for i in range(10)}
    assert any(r.path == "/health" and r.host == "replica-a" for r in seen)
    await backend.aclose()


async def test_empty_length_completion_is_retried_then_reported(replicas):
    replies = iter([completion_reply("", tokens=0, finish="length"), completion_reply("ok", tokens=2)])
    backend, _, urls = await make_backend(replicas, {"replica-a": lambda r: next(replies)})
    assert (await complete(backend)).text == "ok"
    stats = backend.stats()["replicas"][urls["replica-a"]]
    assert stats["errors"] == 1 and stats["healthy"] is True  # the server answered: not taken out
    await backend.aclose()

    backend, _, _ = await make_backend(replicas, {"replica-a": lambda r: completion_reply("", tokens=0, finish="length")})
    with pytest.raises(BackendError, match="empty completion"):
        await complete(backend)
    await backend.aclose()


async def test_bad_request_is_not_retried(replicas):
    backend, seen, _ = await make_backend(
        replicas, {"replica-a": lambda r: web.json_response({"error": {"message": "prompt too long"}}, status=400)}
    )
    with pytest.raises(BackendError, match="rejected the request: HTTP 400: prompt too long"):
        await complete(backend)
    assert len(seen) == 1
    await backend.aclose()


async def test_all_replicas_down_raises_with_every_replica_and_error(replicas):
    backend, seen, urls = await make_backend(
        replicas,
        {"replica-a": NOT_LISTENING, "replica-b": lambda r: web.Response(status=503, text="overloaded")},
        retry=RetryPolicy(max_retries=2, backoff_base_s=0.001, outage_wait_s=0),
    )
    with pytest.raises(BackendError) as raised:
        await complete(backend, "k")
    message = str(raised.value)
    assert "after 3 attempts" in message and urls["replica-a"] in message and urls["replica-b"] in message
    assert "ClientConnectorError" in message and "HTTP 503: overloaded" in message
    assert len(seen) in (1, 2)  # the refused attempts never reached a server
    await backend.aclose()


async def test_requests_wait_out_an_outage_of_every_replica_without_spending_retries(replicas):
    """The only server restarts: requests in flight wait for its health check, then go on."""
    state = {"up": False, "completions": 0}

    def restarting(request: Seen) -> web.Response:
        if not state["up"]:
            raise Drop
        if request.path == "/health":
            return web.Response()
        state["completions"] += 1
        return completion_reply("back")

    backend, seen, urls = await make_backend(
        replicas, {"replica-a": restarting},
        retry=RetryPolicy(max_retries=1, backoff_base_s=0.001, outage_wait_s=30), cooldown_s=0.0,
    )
    waiting = [asyncio.create_task(complete(backend, f"k{i}")) for i in range(3)]
    await asyncio.sleep(0.3)  # far more than their single retry's backoff: they wait, not fail
    assert not any(task.done() for task in waiting)
    state["up"] = True
    assert [(await task).text for task in waiting] == ["back"] * 3
    assert state["completions"] == 3
    assert backend.stats()["replicas"][urls["replica-a"]]["healthy"] is True
    assert any(r.path == "/health" for r in seen)
    await backend.aclose()


async def test_an_outage_longer_than_the_wait_fails_the_request_saying_so(replicas):
    backend, _, _ = await make_backend(
        replicas, {"replica-a": NOT_LISTENING},
        retry=RetryPolicy(max_retries=3, backoff_base_s=0.001, outage_wait_s=0.3), cooldown_s=0.0,
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(BackendError, match=r"every replica stayed down for 0.3 s \(outage_wait_s\).*ClientConnectorError"):
        await complete(backend)
    assert asyncio.get_running_loop().time() - started >= 0.3
    await backend.aclose()


async def test_served_context_is_the_smallest_max_model_len_the_replicas_report(replicas):
    def models(limit):
        def reply(request: Seen) -> web.Response:
            assert request.path == "/v1/models"
            return web.json_response({"object": "list", "data": [
                {"id": "other", "max_model_len": 64}, {"id": "student", "max_model_len": limit}]})
        return reply

    backend, _, _ = await make_backend(
        replicas, {"replica-a": models(4096), "replica-b": models(1024), "replica-c": NOT_LISTENING}
    )
    assert await backend.served_context_tokens() == 1024
    await backend.aclose()
    # Nothing known: a server that does not report it, one that answers garbage, none answering.
    for handler in (models(None), lambda r: web.Response(text="not json"), NOT_LISTENING):
        backend, _, _ = await make_backend(replicas, {"replica-a": handler})
        assert await backend.served_context_tokens() is None
        await backend.aclose()


async def test_count_tokens_is_local(replicas):
    backend, seen, _ = await make_backend(replicas, {"replica-a": refuse})
    assert backend.count_tokens("hello") == 5 and seen == []
    await backend.aclose()


def sse_events(deltas: list[str], *, finish="length", usage=True, stop_reason=None) -> list[str]:
    """The events of a streamed /completions reply: one per delta, continuous usage stats, [DONE]."""
    events = []
    for i, delta in enumerate(deltas, 1):
        choice = {"index": 0, "text": delta, "finish_reason": finish if i == len(deltas) else None,
                  "stop_reason": stop_reason if i == len(deltas) else None}
        event = {"choices": [choice]}
        if usage:
            event["usage"] = {"prompt_tokens": 5, "completion_tokens": i}
        events.append(f"data: {json.dumps(event)}\n\n")
    return events + ["data: [DONE]\n\n"]


def sse_reply(deltas: list[str], **kwargs) -> web.Response:
    return web.Response(content_type="text/event-stream", text="".join(sse_events(deltas, **kwargs)))


async def watched(backend, watch, key=None):
    return await backend.complete_watched("prompt", max_tokens=50, sampling=SamplingParams(), watch=watch, affinity_key=key)


async def never(text: str) -> bool:
    return False


async def test_stream_is_closed_when_the_watcher_says_so(replicas):
    backend, seen, urls = await make_backend(replicas, {"replica-a": lambda r: sse_reply(["one", " two", " three", " four"])})
    shown: list[str] = []

    async def watch(text: str) -> bool:
        shown.append(text)
        return text.endswith("two")

    result = await watched(backend, watch)
    assert (result.text, result.num_tokens, result.finish_reason, result.ended_turn) == ("one two", 2, "closed", False)
    assert shown == ["one", "one two"]
    body = json.loads(seen[0].content)
    assert body["stream"] is True and body["stream_options"]["continuous_usage_stats"] is True
    assert backend.stats()["replicas"][urls["replica-a"]]["completion_tokens"] == 2
    await backend.aclose()


async def test_closing_a_stream_drops_its_connection_so_the_server_stops_generating(replicas):
    """vLLM aborts a request when its client disconnects: a closed stream must not go on."""
    disconnected = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i in range(1, 10_000):
                event = {"choices": [{"index": 0, "text": f" w{i}", "finish_reason": None}], "usage": {"completion_tokens": i}}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            disconnected.set()
            raise
        return response

    backend, _, _ = await make_backend(replicas, {"replica-a": lambda r: endless})

    async def three_words(text: str) -> bool:
        return text.count(" w") >= 3

    result = await watched(backend, three_words)
    assert result.finish_reason == "closed" and result.text == " w1 w2 w3"
    await asyncio.wait_for(disconnected.wait(), timeout=5)
    await backend.aclose()


async def test_stream_to_the_end_reports_finish_and_stop_string(replicas):
    backend, _, _ = await make_backend(
        replicas, {"replica-a": lambda r: sse_reply(["a", "b", ""], finish="stop", stop_reason="</think>")}
    )
    result = await watched(backend, never)
    assert (result.text, result.num_tokens, result.finish_reason, result.stop_string) == ("ab", 3, "stop", "</think>")
    await backend.aclose()
    # Without usage stats every event with text counts as one token.
    backend, _, _ = await make_backend(replicas, {"replica-a": lambda r: sse_reply(["a", "b", "c"], usage=False)})
    assert (await watched(backend, never)).num_tokens == 3
    await backend.aclose()


def breaking_stream(events: list[str]):
    """A streaming reply that sends `events`, then the connection drops."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event.encode())
        await asyncio.sleep(0.05)  # the events reach the client before the drop
        request.transport.close()
        return response

    return reply


async def test_a_stream_that_breaks_midway_returns_its_text_and_takes_the_replica_out(replicas):
    events = [f"data: {json.dumps({'choices': [{'index': 0, 'text': t, 'finish_reason': None}], 'usage': {'completion_tokens': i}})}\n\n"
              for i, t in enumerate(["x", " y"], 1)]
    backend, _, urls = await make_backend(replicas, {
        "replica-a": lambda r: breaking_stream(events),
        "replica-b": lambda r: sse_reply(["from-b"]),
    })
    key = key_on(backend, urls["replica-a"])
    partial = await watched(backend, never, key)
    assert (partial.text, partial.num_tokens, partial.finish_reason) == ("x y", 2, "interrupted")
    assert backend.stats()["replicas"][urls["replica-a"]]["healthy"] is False
    # The sample's next request continues on the other replica.
    assert (await watched(backend, never, key)).text == "from-b"
    await backend.aclose()


async def test_a_stream_that_fails_before_any_text_fails_over(replicas):
    backend, _, urls = await make_backend(replicas, {
        "replica-a": lambda r: web.json_response({"error": {"message": "EngineDeadError"}}, status=500),
        "replica-b": lambda r: sse_reply(["ok"]),
    })
    key = key_on(backend, urls["replica-a"])
    assert (await watched(backend, never, key)).text == "ok"
    assert backend.stats()["replicas"][urls["replica-a"]]["errors"] == 1
    await backend.aclose()


async def test_a_server_that_accepts_but_never_answers_times_out_and_is_reported():
    """A hung server (a real socket that accepts and stays silent) is never waited on forever."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader, writer):
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = VllmHttpBackend(
        [f"http://127.0.0.1:{port}/v1"], served_model_name="m", tokenizer=CharTokenizer(), model_id="m",
        request_timeout_s=0.3, retry=RetryPolicy(max_retries=1, backoff_base_s=0.001, outage_wait_s=0),
    )
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


async def test_a_server_that_takes_fewer_stop_strings_gets_the_first_ones_and_is_remembered(replicas):
    """vLLM refuses more than VLLM_MAX_STOP_STRINGS (default 4) stop strings with a 400."""

    def limited(request: Seen) -> web.Response:
        stop = json.loads(request.content)["stop"]
        if len(stop) > 4:
            return web.json_response({"error": {"message": (
                "2 validation errors: {'type': 'too_long', 'loc': 'body.stop', "
                f"'msg': 'List should have at most 4 items after validation, not {len(stop)}'}}")}}, status=400)
        return completion_reply("a", tokens=1, finish="stop", stop_reason=stop[-1])

    backend, seen, _ = await make_backend(replicas, {"replica-a": limited})
    stops = ["</think>", " Thus", " Now", " Check:", " Note:", " Next,"]
    result = await complete(backend, stop=stops)
    assert result.stop_string == " Check:"
    assert [len(json.loads(r.content)["stop"]) for r in seen] == [6, 4]
    await complete(backend, stop=stops)  # the limit is known now: one request
    assert [len(json.loads(r.content)["stop"]) for r in seen] == [6, 4, 4]
    await backend.aclose()

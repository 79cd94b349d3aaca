"""A small OpenAI-compatible completions server that imitates the two tiny models and misbehaves
on demand: HTTP 500s, hangs past the client's timeout, empty completions, malformed JSON, dropped
connections, or going away entirely.

The imitation is deterministic, so a crashed and resumed build can be compared request for request
with an uninterrupted one:
- thinking requests continue the shared trace by one short span: the student writes " Okay s<w>"
  (its lexicon predictor hands over at the capability word), the teacher " v<w> = <w> Thus" (its
  predictor hands over at the style word "Thus"), where <w> is the number of words so far;
- once the trace has `thinking_words` words, the model ends its thinking (finish "stop");
- an answer request gets a correct Python program for "Problem <i>: ... print n + <i>."
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER_SUFFIXES = ("\n</think>\n\n", "<|channel|>final<|message|>")
THINK_OPENERS = ("<think>\n", "<|channel|>analysis<|message|>")
END_MARKERS = {"qwen3": "</think>", "harmony": "<|end|>"}

# A fault decides what happens to one request: None serves it normally.
Fault = Callable[["Call"], str | None]
FAULTS = ("500", "hang", "empty", "malformed", "disconnect", "no_choices")


@dataclass(frozen=True)
class Call:
    number: int  # 1-based, over the server's life (restarts included)
    model: str
    problem: int | None
    answer: bool
    words: int  # words of thinking in the prompt


def problem_number(prompt: str) -> int | None:
    match = re.search(r"Problem (\d+):", prompt)
    return int(match.group(1)) if match else None


def thinking_of(prompt: str) -> str:
    starts = [prompt.rfind(opener) + len(opener) for opener in THINK_OPENERS if opener in prompt]
    return prompt[max(starts):] if starts else ""


class FakeOpenAIServer:
    """Serves `/v1/completions`, `/v1/models` and `/health` on 127.0.0.1 (a free port, kept across
    `stop()`/`start()` so a restarted server is the same endpoint)."""

    def __init__(
        self,
        *,
        thinking_words: int = 40,
        fault: Fault | None = None,
        hang_s: float = 30.0,
        wrong_answers: frozenset[int] = frozenset(),
        empty_answers: frozenset[int] = frozenset(),
        max_model_len: int | None = None,
    ):
        self.thinking_words = thinking_words
        self.max_model_len = max_model_len  # what /v1/models reports (vLLM's --max-model-len)
        self.wrong_answers = wrong_answers  # problems answered with a wrong program
        self.empty_answers = empty_answers  # problems whose answer is always empty
        self.fault = fault
        self.hang_s = hang_s
        self.on_call: Callable[[Call], None] | None = None
        self.calls: list[Call] = []
        self.faults_served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(200, b"")
                elif self.path == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": server.served_models()}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                server._handle(self, body)

            def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def served_models(self) -> list[dict]:
        models = [{"id": name, "object": "model"} for name in ("tiny-teacher", "tiny-student")]
        if self.max_model_len is not None:
            for model in models:
                model["max_model_len"] = self.max_model_len
        return models

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests_for(self, problem: int) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.problem == problem)

    # --- one request --------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        prompt = body.get("prompt") or ""
        thinking = thinking_of(prompt)
        with self._lock:
            call = Call(
                number=len(self.calls) + 1, model=body.get("model", ""), problem=problem_number(prompt),
                answer=prompt.endswith(ANSWER_SUFFIXES), words=len(thinking.split()),
            )
            self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        fault = self.fault(call) if self.fault else None
        if fault is not None:
            with self._lock:
                self.faults_served[fault] += 1
            self._serve_fault(handler, fault)
            return
        text, finish, stop_reason = self._imitate(call, body)
        tokens = len(text)  # an upper bound of its tokens under any byte-level BPE
        if body.get("stream"):
            self._stream(handler, text, finish, stop_reason)
            return
        payload = {
            "id": f"cmpl-{call.number}", "object": "text_completion", "model": call.model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": tokens, "total_tokens": tokens},
        }
        handler._send(200, json.dumps(payload).encode())

    def _imitate(self, call: Call, body: dict) -> tuple[str, str, str | None]:
        teacher = "teacher" in call.model
        if call.answer:
            if call.problem in self.empty_answers:
                return "", "stop", None
            offset = (call.problem or 0) + (1000 if call.problem in self.wrong_answers else 0)
            return f"```python\nprint(int(input()) + {offset})\n```", "stop", None
        if call.words >= self.thinking_words:
            return "", "stop", END_MARKERS["harmony" if teacher else "qwen3"]
        if teacher:
            return f" v{call.words} = {call.words} Thus", "length", None
        return f" Okay s{call.words}", "length", None

    def _stream(self, handler: BaseHTTPRequestHandler, text: str, finish: str, stop_reason: str | None) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        pieces = re.findall(r"\s*\S+", text) or [""]
        try:
            for index, piece in enumerate(pieces, start=1):
                last = index == len(pieces)
                event = {
                    "choices": [{"index": 0, "text": piece, "finish_reason": finish if last else None,
                                 "stop_reason": stop_reason if last else None}],
                    "usage": {"completion_tokens": sum(map(len, pieces[:index]))},
                }
                handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                handler.wfile.flush()
            handler.wfile.write(b"data: [DONE]\n\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream at a handover
        handler.close_connection = True

    def _serve_fault(self, handler: BaseHTTPRequestHandler, fault: str) -> None:
        try:
            if fault == "500":
                handler._send(500, b'{"error": {"message": "injected internal error"}}')
            elif fault == "hang":
                time.sleep(self.hang_s)
                handler._send(500, b'{"error": {"message": "too late"}}')
            elif fault == "empty":
                payload = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}],
                           "usage": {"completion_tokens": 0}}
                handler._send(200, json.dumps(payload).encode())
            elif fault == "malformed":
                handler._send(200, b'{"choices": [{"text": "Okay', "application/json")
            elif fault == "no_choices":
                handler._send(200, b'{"object": "text_completion", "choices": []}')
            elif fault == "disconnect":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
            else:
                raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

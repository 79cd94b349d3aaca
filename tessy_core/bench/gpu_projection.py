"""A GPU-regime projection: the real engine, real predictors and real schedules against a latency
model of GPU vLLM replicas, on a virtual clock. `tessy bench gpu-projection`.

Why: on the CPU world every request costs tens of milliseconds of fixed overhead, which hides what
a GPU node does with the same schedule. Here nothing is served: a `SimulatedReplica` stands for a
vLLM replica and a `SimulatedBackend` for the HTTP backend, so the engine's own code (span
requests, stop strings, learned request sizes, predictors, both schedulers) runs unchanged while
time is the model's. THE FIGURES ARE A PROJECTION FROM A MODEL, not a measurement.

The replica model (per replica; every number is a parameter, defaults in `ReplicaModel`):
- continuous batching: each decode step advances every running sequence by one token and takes
  `step_overhead_ms + (weight bytes read + KV bytes read) / (HBM bandwidth x efficiency)`, per GPU
  of the replica: decode time grows with the batch and with the contexts it attends over;
- prefill: prompt tokens not in the prefix cache are computed at `prefill_tokens_per_s` (chunked
  into the running steps: they lengthen the step for everybody). The cache is per replica and per
  sample (the engine pins a sample's requests to one replica): a request reuses the longest prefix
  it shares with that sample's previous request, less one 16-token block;
- per-request overhead: `request_overhead_ms` of a server's API process per request (admission,
  tokenizing, detokenizing, the HTTP reply), served one at a time by each of its `api_servers`
  processes (one unless vLLM runs with --api-server-count); streamed requests add
  `stream_token_overhead_ms` per token sent;
- the client: each build process's event loop spends `client_request_ms` of CPU per request (HTTP,
  token counting, the predictors' bookkeeping), one request at a time, so a process with many
  samples in flight can become the bottleneck; `build_processes` loops share the samples (shards
  on a Ray runner; the default thread runner is one process, one GIL);
- stop strings end a sequence at the server as vLLM does (the text stops before the string; its
  tokens were decoded); a closed stream stops decoding at the next step.
The KV cache is assumed to hold every in-flight trace (size `concurrency` by docs/sizing.md §4).

The traces (`TraceProfile`): each sample's thinking length is drawn around the paper's 14.6K tokens,
its answer between 1K and 4K tokens. Each sample is one trace both models write (`SampleScripts`):
the small world's teacher traces of one problem family end to end, with the student's style runs
between their reasoning pieces. From where the thinking stands, each model writes the trace and,
where the trace has the other model's words, its own: the teacher its style runs (where the stop
strings and its predictor end its span), the student its reasoning (where its predictor hands
back). Span lengths are therefore the small world's, and a trace holds as many spans as its length
needs ("scaled up" in count, not in span length), which gives a teacher share of kept tokens close
to the paper's 0.70-0.78. Real predictors decide every handover, reading from the start of the
small-world trace they are in (`TraceLocalPredictor`: they were trained on whole short traces).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import json
import math
import random
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.backends.base import Completion, SamplingParams, TextWatcher, TokenScores
from tessy_core.predictors.incremental import common_prefix_length

# -- the virtual clock ----------------------------------------------------------------------------


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run.

    Sleeps cost no wall time; computation costs no virtual time (the simulation charges what it
    models explicitly). Nothing in a simulation may wait on real I/O or threads.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:  # noqa: D102 - asyncio API
        return self._virtual_now

    def _run_once(self) -> None:
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not ready:
            while scheduled and scheduled[0]._cancelled:
                heapq.heappop(scheduled)
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            if scheduled:
                self._virtual_now = max(self._virtual_now, scheduled[0]._when)
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro):
    """Run a coroutine to completion on a fresh `VirtualClockLoop`."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- the replica model ----------------------------------------------------------------------------


class ReplicaModel(BaseModel):
    """A GPU vLLM replica, as the projection models it (docs/sizing.md says where each number comes from)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    gpus: int = Field(1, ge=1)
    # Bytes read per decode step and GPU: weights (with tensor parallelism, each GPU's share; for a
    # mixture of experts at large batch, about all experts) and the KV cache of the batch.
    weight_gb_per_gpu: float
    kv_kib_per_token_per_gpu: float
    hbm_tb_s: float = 3.35  # H100 SXM
    bandwidth_efficiency: float = 0.6
    step_overhead_ms: float = 4.0  # scheduling, sampling, kernel launches, TP all-reduce
    prefill_tokens_per_s: float = 20_000.0
    request_overhead_ms: float = 3.0  # API process time per request, one request at a time
    api_servers: int = Field(1, ge=1, description="API processes in front of the engine (vllm serve --api-server-count)")
    stream_token_overhead_ms: float = 0.05

    def step_s(self, context_tokens: int, new_prefill_tokens: int) -> float:
        bytes_read = self.weight_gb_per_gpu * 1e9 + context_tokens * self.kv_kib_per_token_per_gpu * 1024
        decode = bytes_read / (self.hbm_tb_s * 1e12 * self.bandwidth_efficiency)
        return self.step_overhead_ms / 1000 + decode + new_prefill_tokens / self.prefill_tokens_per_s


# GPT-OSS-120B on 4 H100s (TP 4): ~65 GB of weights (MXFP4 experts), all read at large batch,
# a quarter per GPU; KV 72 KiB/token with half the layers over a 128-token window: ~36 KiB, a
# quarter per GPU. Qwen3-8B on one H100: 16.4 GB of bf16 weights, 144 KiB/token of KV.
TEACHER_GPU = ReplicaModel(name="gpt-oss-120b-tp4", gpus=4, weight_gb_per_gpu=16.3, kv_kib_per_token_per_gpu=9.0,
                           step_overhead_ms=6.0, prefill_tokens_per_s=25_000.0)
STUDENT_GPU = ReplicaModel(name="qwen3-8b", gpus=1, weight_gb_per_gpu=16.4, kv_kib_per_token_per_gpu=144.0,
                           step_overhead_ms=4.0, prefill_tokens_per_s=15_000.0)


def student_replica(tensor_parallel: int = 1) -> ReplicaModel:
    """Qwen3-8B over `tensor_parallel` GPUs: each reads its share of the weights and KV cache per
    step; the all-reduces add ~1 ms of step overhead per doubling (the teacher's TP 4: 6 ms)."""
    if tensor_parallel == 1:
        return STUDENT_GPU
    return STUDENT_GPU.model_copy(update={
        "name": f"qwen3-8b-tp{tensor_parallel}", "gpus": tensor_parallel,
        "weight_gb_per_gpu": STUDENT_GPU.weight_gb_per_gpu / tensor_parallel,
        "kv_kib_per_token_per_gpu": STUDENT_GPU.kv_kib_per_token_per_gpu / tensor_parallel,
        "step_overhead_ms": STUDENT_GPU.step_overhead_ms + math.log2(tensor_parallel),
        "prefill_tokens_per_s": STUDENT_GPU.prefill_tokens_per_s * tensor_parallel,
    })


class TraceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thinking_tokens_mean: float = Field(14_600, gt=0, description="paper: TESSY traces ~14.6K tokens")
    thinking_tokens_sigma: float = Field(0.35, ge=0, description="lognormal spread of a sample's thinking length")
    answer_tokens_min: int = Field(1_000, ge=1)
    answer_tokens_max: int = Field(4_000, ge=1)
    problem_tokens: int = Field(500, ge=1)
    seed: int = 0


@dataclass
class _Sequence:
    tokens: list[str]  # the text it will write, token by token (beyond what it may be allowed)
    max_tokens: int
    stop: tuple[str, ...]
    context: int  # tokens it attends over (prompt + written)
    prefill: int  # prompt tokens to compute first
    stream: bool
    watch: TextWatcher | None = None
    eos: bool = False  # the planned text ends the turn (EOS after its last token)
    text: str = ""
    written: int = 0
    done: asyncio.Future | None = None
    closed: bool = False
    finish_reason: str | None = None
    stop_string: str | None = None
    api_s: float = 0.0  # in the server's API process (waiting for it, then served), request and reply
    engine_s: float = 0.0  # from admission to the last token: waiting for a step, prefill, decode


class OneAtATime:
    """A resource that serves one use at a time (a server's API process, the client's event loop):
    each use waits for the ones before it, then for its own cost."""

    def __init__(self) -> None:
        self._free_at = 0.0
        self.busy_s = 0.0

    async def use(self, cost_s: float) -> None:
        if not cost_s:
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._free_at)
        self._free_at = start + cost_s
        self.busy_s += cost_s
        await asyncio.sleep(self._free_at - loop.time())


class ClientLoop(OneAtATime):
    """The build process's event loop: each request costs it `cost_s` of CPU (the HTTP client,
    token counting, the predictors' bookkeeping), one request at a time."""

    def __init__(self, cost_s: float):
        super().__init__()
        self.cost_s = cost_s

    async def spend(self) -> None:
        await self.use(self.cost_s)


class SimulatedReplica:
    """One replica: a continuous-batching decode loop on the virtual clock, and its counters."""

    def __init__(self, model: ReplicaModel):
        self.model = model
        self._waiting: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._wakeup: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._api = [OneAtATime() for _ in range(model.api_servers)]
        self._prefix: dict[str, str] = {}
        self.busy_s = 0.0
        self.steps = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self.generation_tokens = 0
        self.batch_token_sum = 0

    def cached_prefix(self, key: str | None, prompt: str, prompt_tokens: int, count) -> int:
        """Prompt tokens this request finds in the prefix cache (its sample's previous prompt)."""
        if key is None:
            return 0
        previous = self._prefix.get(key, "")
        self._prefix[key] = prompt
        if not previous:
            return 0
        same = len(previous) if prompt.startswith(previous) else common_prefix_length(previous, prompt)
        new_tokens = count(prompt[same:]) + 16  # the last block is computed again
        return max(0, prompt_tokens - new_tokens)

    async def generate(self, sequence: _Sequence) -> _Sequence:
        loop = asyncio.get_running_loop()
        self.requests += 1
        api = self._api[self.requests % len(self._api)]  # connections spread over the API processes
        started = loop.time()
        await api.use(self.model.request_overhead_ms / 1000)
        admitted = loop.time()
        sequence.done = loop.create_future()
        self._waiting.append(sequence)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._decode_loop())
        elif self._wakeup is not None:
            self._wakeup.set()
        await sequence.done
        decoded = loop.time()
        await api.use(self.model.request_overhead_ms / 1000 / 2)  # the reply
        sequence.engine_s = decoded - admitted
        sequence.api_s = (admitted - started) + (loop.time() - decoded)
        return sequence

    async def _decode_loop(self) -> None:
        while self._waiting or self._running:
            admitted, self._waiting = self._waiting, []
            prefill = sum(s.prefill for s in admitted)
            self._running.extend(admitted)
            context = sum(s.context for s in self._running)
            step = self.model.step_s(context, prefill)
            self.steps += 1
            self.busy_s += step
            self.batch_token_sum += len(self._running)
            await asyncio.sleep(step)
            still = []
            for sequence in self._running:
                if sequence.closed:  # the client closed the stream: aborted at this step
                    if not sequence.done.done():
                        sequence.done.set_result(None)
                    continue
                if self._advance(sequence):
                    still.append(sequence)
            self._running = still
        self._loop_task = None

    def _advance(self, sequence: _Sequence) -> bool:
        """One token for `sequence`; False once it finished."""
        token = sequence.tokens[sequence.written] if sequence.written < len(sequence.tokens) else ""
        sequence.written += 1
        sequence.context += 1
        self.generation_tokens += 1
        sequence.text += token
        for stop in sequence.stop:
            at = sequence.text.find(stop, max(0, len(sequence.text) - len(token) - len(stop)))
            if at != -1:
                sequence.text = sequence.text[:at]
                sequence.finish_reason, sequence.stop_string = "stop", stop
                sequence.done.set_result(None)
                return False
        if sequence.eos and sequence.written >= len(sequence.tokens):
            sequence.finish_reason = "stop"
            sequence.done.set_result(None)
            return False
        if sequence.written >= sequence.max_tokens:
            sequence.finish_reason = "length"
            sequence.done.set_result(None)
            return False
        if sequence.stream and sequence.watch is not None:
            asyncio.get_running_loop().create_task(_notify(sequence, self.model.stream_token_overhead_ms / 1000))
        return True

    def figures(self, wall_s: float) -> dict:
        return {
            "model": self.model.name,
            "gpus": self.model.gpus,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_cached": self.cached_prompt_tokens,
            "generation_tokens": self.generation_tokens,
            "decode_steps": self.steps,
            "mean_batch": round(self.batch_token_sum / self.steps, 1) if self.steps else 0.0,
            "busy_share": round(self.busy_s / wall_s, 3) if wall_s else 0.0,
            "generation_tokens_per_s": round(self.generation_tokens / wall_s, 1) if wall_s else 0.0,
        }


def _pool_figures(pool: Sequence[SimulatedReplica], wall_s: float) -> dict:
    """One model's replicas' figures added up (busy share and mean batch: their means)."""
    each = [replica.figures(wall_s) for replica in pool]
    total = {key: sum(f[key] for f in each) for key in (
        "gpus", "requests", "prompt_tokens", "prompt_tokens_cached", "generation_tokens", "decode_steps",
        "generation_tokens_per_s",
    )}
    steps = sum(r.steps for r in pool)
    return {
        "model": pool[0].model.name,
        "replicas": len(pool),
        **total,
        "mean_batch": round(sum(r.batch_token_sum for r in pool) / steps, 1) if steps else 0.0,
        "busy_share": round(sum(f["busy_share"] for f in each) / len(each), 3),
        "busy_share_max": max(f["busy_share"] for f in each),
    }


async def _notify(sequence: _Sequence, delay_s: float) -> None:
    """A streamed token reaches the client (after its share of the API process)."""
    if delay_s:
        await asyncio.sleep(delay_s)
    if sequence.closed or sequence.done.done():
        return
    if await sequence.watch(sequence.text):
        sequence.closed = True
        sequence.finish_reason = "closed"


# -- what the simulated models write ----------------------------------------------------------------


@dataclass
class TextPools:
    """The small world's text as each model writes it: its traces' reasoning (the capability pieces
    between style runs, in order, by problem family), its style runs (as often as its corpus has
    each), and answer lines."""

    reasoning: dict[str, dict[str, list[list[str]]]]  # role -> family -> traces -> pieces in order
    openings: list[str]  # the student's style runs that open a trace
    style_runs: dict[str, list[str]]  # role -> style runs with reasoning on both sides
    answer_lines: list[str]

    @classmethod
    def from_world_corpus(cls, corpus_dir: Path, limit: int = 2000) -> "TextPools":
        from tessy_core.predictors.stops import style_runs

        reasoning: dict[str, dict[str, list[list[str]]]] = {"teacher": {}, "student": {}}
        openings: list[str] = []
        runs: dict[str, list[str]] = {"teacher": [], "student": []}
        answers: set[str] = set()
        for role in ("teacher", "student"):
            with (corpus_dir / f"{role}.jsonl").open() as handle:
                for _, line in zip(range(limit), handle):
                    row = json.loads(line)
                    text, cursor, pieces = row["thinking"], 0, []
                    for start, end in style_runs(text, row["style_spans"]):
                        piece = text[cursor:start].strip()
                        if piece:
                            pieces.append(piece)
                            if text[end:].strip():
                                runs[role].append(text[start:end])
                        elif role == "student" and start == 0:
                            openings.append(text[start:end])
                        cursor = end
                    if pieces:
                        reasoning[role].setdefault(row["family"], []).append(pieces)
                    if role == "teacher":
                        answers.update(line for line in row["answer"].splitlines() if line.strip() and "```" not in line)
        return cls({role: dict(sorted(found.items())) for role, found in reasoning.items()}, openings, runs, sorted(answers))


@dataclass
class _Segment:
    start: int  # offset in the sample's trace
    text: str  # with its leading space (BPE tokens carry it)
    style: bool


@dataclass
class _SampleScript:
    """What one sample's trace is meant to be: its drawn lengths and the TESSY trace both models
    write (real traces' reasoning in order, the student's style runs between the pieces)."""

    thinking_tokens: int
    answer_tokens: int
    rng: random.Random
    family: str = ""
    segments: list[_Segment] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    world_trace_starts: list[int] = field(default_factory=list)  # where each world trace in it begins
    # (offset in the thinking, offset in the trace) where each piece of the last request's text
    # began: the thinking leaves the trace where a model skips or rewrites part of it.
    anchors: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])

    @property
    def end(self) -> int:
        return self.starts[-1] + len(self.segments[-1].text) if self.segments else 0

    def add(self, text: str, style: bool) -> None:
        start = self.end
        self.segments.append(_Segment(start, text if not self.segments else " " + text, style))
        self.starts.append(start)

    def segment_at(self, offset: int) -> int:
        return max(bisect.bisect_right(self.starts, offset) - 1, 0)

    def trace_offset(self, thinking_length: int) -> int:
        """Where in the trace a thinking of this length stands."""
        found = bisect.bisect_right(self.anchors, (thinking_length, math.inf)) - 1
        at, trace_at = self.anchors[found] if found >= 0 else (0, 0)
        return trace_at + max(thinking_length - at, 0)

    def world_trace_start(self, thinking_length: int) -> int:
        """Where in a thinking of this length the world trace it ends in began."""
        position = self.trace_offset(thinking_length)
        began = self.world_trace_starts[max(bisect.bisect_right(self.world_trace_starts, position) - 1, 0)]
        return max(thinking_length - (position - began), 0)


class SampleScripts:
    """Each sample's script, shared by both models' backends: its drawn lengths and its trace."""

    def __init__(self, pools: TextPools, profile: TraceProfile):
        self.pools = pools
        self.profile = profile
        self._scripts: dict[str, _SampleScript] = {}

    def get(self, key: str) -> _SampleScript:
        sample = key.rsplit("/", 1)[0]
        script = self._scripts.get(sample)
        if script is None:
            rng = random.Random(f"{self.profile.seed}:{sample}")
            mean = self.profile.thinking_tokens_mean
            sigma = self.profile.thinking_tokens_sigma
            thinking = int(mean * math.exp(rng.gauss(0, sigma) - sigma * sigma / 2))
            answer = rng.randint(self.profile.answer_tokens_min, self.profile.answer_tokens_max)
            script = _SampleScript(max(thinking, 64), answer, random.Random(rng.random()))
            self._write_trace(script, rng)
            self._scripts[sample] = script
        return script

    def _write_trace(self, script: _SampleScript, rng: random.Random) -> None:
        """The sample's TESSY trace, long enough for its thinking: whole traces of one problem
        family one after another, each a student's opening and a teacher trace's reasoning pieces in
        order with the student's style runs between them."""
        pools = self.pools
        script.family = rng.choice(sorted(pools.reasoning["teacher"]))
        traces = pools.reasoning["teacher"][script.family]
        wanted = script.thinking_tokens * 3.6 * 1.5 + 200
        while not script.segments or script.starts[-1] < wanted:
            script.world_trace_starts.append(script.end)
            script.add(rng.choice(pools.openings), True)
            for index, piece in enumerate(rng.choice(traces)):
                if index:
                    script.add(rng.choice(pools.style_runs["student"]), True)
                script.add(piece, False)


class TraceLocalPredictor:
    """A boundary predictor that reads a simulated trace from the start of the world trace it is in.

    The small world's traces are ~150 tokens; a projected one is many of them end to end, and past
    the first, the predictor's window would hold text no model writes (one trace's end, another's
    start), where the small world's predictor, trained on whole short traces, cuts mid-sentence.
    Read from the current world trace's start, each call sees the context the CPU world's
    predictor sees, so the spans it cuts (and what is thrown away) are those of the world's own
    length at any projected length. The incremental reading still applies: within one world trace
    the text read only grows; at a seam it starts anew.
    """

    reads_streams = True

    def __init__(self, predictor, scripts: "SampleScripts"):
        self.predictor = predictor
        self.scripts = scripts

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    async def find_boundary(self, context: str, chunk: str, target, min_offset: int = 0, *, stream: str | None = None,
                            lookahead: bool = False):
        if stream is not None:
            context = context[self.scripts.get(stream.split("/", 1)[0]).world_trace_start(len(context)) :]
        return await self.predictor.find_boundary(context, chunk, target, min_offset, stream=stream, lookahead=lookahead)


class SimulatedBackend:
    """A `Backend` (and `StreamingBackend`) of one model served by simulated replicas."""

    def __init__(self, role: str, replicas: Sequence[SimulatedReplica], tokenizer, scripts: SampleScripts | None,
                 clients: Sequence[ClientLoop] = (), think_end: str = "</think>", answer_open: str = "\n</think>\n\n"):
        self.role = role
        self.replicas = list(replicas)
        self.clients = list(clients) or [ClientLoop(0.0)]
        self.tokenizer = tokenizer
        self.scripts = scripts
        self.think_end = think_end
        self.answer_open = answer_open
        # Seconds the requests spent in each place, summed (where a sample's time goes).
        self.request_seconds = {"client": 0.0, "api": 0.0, "engine": 0.0}

    @property
    def model_id(self) -> str:
        return f"simulated:{self.replicas[0].model.name}"

    def replica_for(self, affinity_key: str | None) -> SimulatedReplica:
        """The replica a sample's requests go to: all of one sample's to one replica (the HTTP
        backend pins them the same way, for the prefix cache)."""
        sample = (affinity_key or "anonymous").rsplit("/", 1)[0]
        return self.replicas[zlib.crc32(sample.encode()) % len(self.replicas)]

    def client_for(self, affinity_key: str | None) -> ClientLoop:
        """The build process whose loop sends a sample's requests (samples spread over processes
        independently of replicas)."""
        sample = (affinity_key or "anonymous").rsplit("/", 1)[0]
        return self.clients[zlib.crc32(f"process:{sample}".encode()) % len(self.clients)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def _tokens(self, text: str) -> list[str]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        pieces, cursor = [], 0
        for index, (_, end) in enumerate(offsets):
            end = len(text) if index == len(offsets) - 1 else end
            pieces.append(text[cursor:end])
            cursor = end
        return pieces

    def _continuation(self, prompt: str, key: str, max_tokens: int) -> tuple[list[str], bool]:
        """What the model writes after `prompt` (and whether that text ends its turn): the sample's
        trace from where its thinking stands, then its own words where the trace has the other
        model's."""
        script = self.scripts.get(key or "anonymous")
        rng, pools = script.rng, self.scripts.pools
        if prompt.endswith(self.answer_open):
            lines = []
            while len(lines) * 9 < script.answer_tokens:
                lines.append(rng.choice(pools.answer_lines))
            tokens = self._tokens("```python\n" + "\n".join(lines) + "\n```")
            return tokens[: script.answer_tokens], True
        thinking = prompt.rsplit("<think>\n", 1)[-1]
        # The thinking's length in tokens, estimated from its characters (3.6 per token in these pools).
        written = len(thinking) / 3.6
        if written >= script.thinking_tokens:
            return self._tokens(self.think_end), False
        budget = min(max_tokens + 8, int(script.thinking_tokens - written) + 8)
        position = script.trace_offset(len(thinking))
        index = script.segment_at(position)
        segment = script.segments[index]
        text = segment.text[position - segment.start :]
        if self.role == "teacher" and segment.style:
            # The teacher writes reasoning: the rest of a style run is not its text.
            index += 1
            segment = script.segments[min(index, len(script.segments) - 1)]
            text, position = segment.text, segment.start
        elif thinking and text and not text[0].isspace():
            # The thinking ended mid-word (a cut inside a word): go on from the next word.
            skip = text.find(" ") if " " in text else len(text)
            text, position = text[skip:], position + skip
        anchors = [(len(thinking), position)]
        # Past where it stands, each model writes its own kind of text where the trace has the
        # other model's: the teacher its style runs (where it hands over), the student its own
        # reasoning (where it hands back).
        own_reasoning = pools.reasoning["student"].get(script.family) or [[""]]
        while len(text) / 3.6 < budget and index + 1 < len(script.segments):
            index += 1
            following = script.segments[index]
            anchors.append((len(thinking) + len(text), following.start))
            if self.role == "teacher" and following.style:
                text += " " + rng.choice(pools.style_runs["teacher"])
            elif self.role == "student" and not following.style:
                text += " " + rng.choice(rng.choice(own_reasoning))
            else:
                text += following.text
                continue
            anchors.append((len(thinking) + len(text), following.start + len(following.text)))
        script.anchors = anchors
        if not thinking:
            text = text.lstrip()
        tokens = self._tokens(text)
        if len(text) / 3.6 + written >= script.thinking_tokens:
            tokens += self._tokens(self.think_end)
        return tokens, False

    async def complete(self, prompt: str, *, max_tokens: int, sampling: SamplingParams, stop: Sequence[str] = (),
                       affinity_key: str | None = None) -> Completion:
        return await self._generate(prompt, max_tokens, stop, affinity_key, None)

    async def complete_watched(self, prompt: str, *, max_tokens: int, sampling: SamplingParams, watch: TextWatcher,
                               stop: Sequence[str] = (), affinity_key: str | None = None) -> Completion:
        return await self._generate(prompt, max_tokens, stop, affinity_key, watch)

    async def _generate(self, prompt, max_tokens, stop, affinity_key, watch) -> Completion:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.client_for(affinity_key).spend()
        self.request_seconds["client"] += loop.time() - started
        tokens, eos = self._continuation(prompt, affinity_key or "anonymous", max_tokens)
        prompt_tokens = self.scripts.profile.problem_tokens + int(len(prompt) / 3.6)
        replica = self.replica_for(affinity_key)
        cached = replica.cached_prefix(affinity_key, prompt, prompt_tokens, lambda t: int(len(t) / 3.6))
        replica.prompt_tokens += prompt_tokens
        replica.cached_prompt_tokens += cached
        sequence = _Sequence(tokens, max_tokens, tuple(stop), prompt_tokens, prompt_tokens - cached,
                             stream=watch is not None, watch=watch, eos=eos)
        await replica.generate(sequence)
        self.request_seconds["api"] += sequence.api_s
        self.request_seconds["engine"] += sequence.engine_s
        if sequence.finish_reason == "closed":
            return Completion(sequence.text, sequence.written, "closed")
        return Completion(sequence.text, sequence.written, sequence.finish_reason or "length", sequence.stop_string)

    async def score(self, prompt: str, continuation: str, *, affinity_key: str | None = None) -> TokenScores:
        raise NotImplementedError("the latency model does not score text")

    async def aclose(self) -> None:
        return None


# -- the projection -------------------------------------------------------------------------------


class ProjectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(64, ge=1)
    concurrency: int = Field(64, ge=1)
    modes: tuple[str, ...] = ("tessy", "teacher_only", "lockstep_standin")
    lockstep_teacher_k: int = 10
    lockstep_student_k: int = 5
    predictor_step_ms: float = Field(
        5.0, ge=0, description="virtual time of one batched incremental predictor call (a 0.6B classifier on a GPU)"
    )
    client_request_ms: float = Field(
        1.8, ge=0, description=(
            "CPU of a build process's event loop per request, one request at a time (1.7-1.8 ms measured "
            "on the 2-core CPU machine with the aiohttp backend, 5.2 ms with httpx; docs/sizing.md §9)"
        ),
    )
    predictor_reads_world_traces: bool = Field(
        True, description=(
            "the predictors read each simulated trace from the start of the small-world trace it is in "
            "(TraceLocalPredictor); off: the whole stitched trace, which the world's predictors were never "
            "trained on"
        ),
    )
    build_processes: int = Field(
        1, ge=1, description="build processes sharing the samples in flight, one event loop each (a Ray runner's shards)"
    )
    prompts_to_project: int = Field(80_000, ge=1)
    teacher: ReplicaModel = TEACHER_GPU
    student: ReplicaModel = STUDENT_GPU
    # Replicas of each model serving the samples in flight (a sample's requests stay on one).
    teacher_replicas: int = Field(1, ge=1)
    student_replicas: int = Field(1, ge=1)
    profile: TraceProfile = TraceProfile()


def _decoder(mode: str, settings: ProjectionSettings, backends: dict, predictors: dict):
    from tessy_core.chat import ChatFormat
    from tessy_core.config import FAMILY_MARKERS, EngineConfig, Mode, ModelFamily, SamplingConfig
    from tessy_core.engine.loop import CooperativeDecoder, Participant
    from tessy_core.engine.records import Role

    def fmt(tag: str) -> ChatFormat:
        return ChatFormat(lambda problem: f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>{tag}\n", FAMILY_MARKERS[ModelFamily.qwen3])

    fixed = mode in ("lockstep_standin", "tessy_fixed")
    engine = EngineConfig(
        mode=Mode.teacher_only if mode == "teacher_only" else Mode.tessy,
        max_thinking_tokens=200_000, max_answer_tokens=8_000, max_attempts=1,
        concurrency=settings.concurrency,
        span_requests={"tessy": "stops", "tessy_stream": "stream"}.get(mode, "fixed"),
    )
    k = {Role.teacher: settings.lockstep_teacher_k if fixed else 10, Role.student: settings.lockstep_student_k if fixed else 5}
    participants = {
        role: Participant(role, backends[role.value], fmt(role.value), k[role], SamplingConfig(), False,
                          predictors[role.value] if mode != "teacher_only" else None)
        for role in Role
    }
    return CooperativeDecoder(participants[Role.teacher], participants[Role.student], engine, config_hash="projection")


async def _run_mode(mode: str, settings: ProjectionSettings, world_root: Path, tokenizers: dict, pools: TextPools) -> dict:
    from tessy_core.engine.records import SampleRequest
    from tessy_core.engine.runner import run_samples, run_samples_lockstep
    from tessy_core.predictors.learned import LearnedPredictor

    replicas = {
        "teacher": [SimulatedReplica(settings.teacher) for _ in range(settings.teacher_replicas)],
        "student": [SimulatedReplica(settings.student) for _ in range(settings.student_replicas)],
    }
    clients = [ClientLoop(settings.client_request_ms / 1000) for _ in range(settings.build_processes)]
    scripts = SampleScripts(pools, settings.profile)
    backends = {role: SimulatedBackend(role, replicas[role], tokenizers[role], scripts, clients) for role in replicas}
    predictors = {}
    if mode != "teacher_only":
        for role in replicas:
            predictor = LearnedPredictor(world_root / "predictors" / role, device="cpu")
            for batcher in (predictor.batcher, getattr(predictor, "_step_batcher", None)):
                if batcher is not None:
                    batcher.inline, batcher.inline_delay_s = True, settings.predictor_step_ms / 1000
            predictors[role] = TraceLocalPredictor(predictor, scripts) if settings.predictor_reads_world_traces else predictor
    decoder = _decoder(mode, settings, backends, predictors)
    sample_s = _time_samples(decoder)
    # The same ids in every mode: a sample's drawn thinking and answer lengths follow its id, so
    # every mode writes the same traces' lengths (the longest one sets the run's end).
    requests = [SampleRequest(f"sample-{i}", f"p{i}", f"problem {i}") for i in range(settings.samples)]
    results = []
    cpu_started = time.process_time()
    loop = asyncio.get_running_loop()
    started = loop.time()
    # The steady state: from the start until the last sample is taken, every slot is busy; after
    # it the pool drains and the run's end is set by its longest sample. What the replicas decoded
    # by then is noted (a build of 80K prompts is almost all steady state).
    steady: dict[str, float] = {}

    def handed_out():
        yield from requests[:-1]
        steady["s"] = loop.time() - started
        steady["generated"] = sum(r.generation_tokens for pool in replicas.values() for r in pool)
        yield requests[-1]

    if mode == "lockstep_standin":
        summary = await run_samples_lockstep(decoder, handed_out(), pool_size=settings.concurrency, on_result=results.append)
    else:
        summary = await run_samples(decoder, handed_out(), concurrency=settings.concurrency, on_result=results.append)
    virtual_s = loop.time() - started
    record = summary.to_record()
    kept = record["tokens_kept"]
    ok = [r for r in results if r.ok]
    figures = {
        "virtual_s": round(virtual_s, 1),
        "samples_ok": summary.samples_ok,
        "samples_failed": summary.samples_failed,
        "failure_reasons": record["failure_reasons"],
        "output_tokens": kept,
        "requests": sum(m["requests"] for m in record["models"].values()),
        "models": record["models"],
        "replicas": {role: _pool_figures(pool, virtual_s) for role, pool in replicas.items()},
        "s_per_1k_output_tokens": round(1000 * virtual_s / kept, 3) if kept else None,
        # The busiest build process's loop.
        "client_loop_busy_share": round(max(c.busy_s for c in clients) / virtual_s, 3) if virtual_s else None,
        "simulation_cpu_s": round(time.process_time() - cpu_started, 1),
    }
    if sample_s[0] and results:
        figures["sample_time"] = _where_sample_time_goes(sample_s[0], len(results), backends)
    generated = sum(r.generation_tokens for pool in replicas.values() for r in pool)
    figures["server_tokens_per_kept_token"] = round(generated / kept, 3) if kept else None
    if settings.samples > settings.concurrency and steady.get("generated"):
        # Output tokens of the steady window, from what the replicas decoded in it at the run's
        # ratio of tokens decoded to tokens kept.
        steady_kept = steady["generated"] * kept / generated
        figures["steady_s"] = round(steady["s"], 1)
        figures["steady_s_per_1k_output_tokens"] = round(1000 * steady["s"] / steady_kept, 3)
    if ok:
        figures["thinking_tokens_mean"] = round(sum(sum(s.tokens_kept for s in r.spans) for r in ok) / len(ok))
        if mode != "teacher_only":
            figures["teacher_token_share"] = round(sum(r.teacher_token_share for r in ok) / len(ok), 3)
            figures["spans_per_sample"] = round(sum(len(r.spans) for r in ok) / len(ok), 1)
    if predictors:
        cpu = sum(p.stats()["cpu_s"] for p in predictors.values())
        figures["predictor_cpu_s_per_1k_output_tokens"] = round(1000 * cpu / kept, 4) if kept else None
    # GPU-hours for the projected build at this mode's pace, counting the GPUs the mode uses (a
    # single-model mode leaves the other model's replicas out); "balanced": student GPUs counted
    # only for the share of time they are busy (student replicas shared by several teacher
    # replicas), an approximation.
    teacher_gpus = settings.teacher.gpus * settings.teacher_replicas
    student_gpus = settings.student.gpus * settings.student_replicas
    used = {"teacher_only": (teacher_gpus, 0), "student_only": (0, student_gpus)}.get(mode, (teacher_gpus, student_gpus))
    gpus = sum(used)
    if summary.samples_ok:
        # At the steady pace when the run had one (a build is almost all steady state).
        pace = figures.get("steady_s_per_1k_output_tokens") or figures["s_per_1k_output_tokens"]
        hours = settings.prompts_to_project * pace * kept / 1000 / summary.samples_ok / 3600
        student_busy = figures["replicas"]["student"]["busy_share"]
        figures["projected"] = {
            "prompts": settings.prompts_to_project,
            "deployment_hours": round(hours, 1),
            "gpus": gpus,
            "gpu_hours": round(hours * gpus),
            "gpu_hours_balanced": round(hours * (used[0] + used[1] * student_busy)),
            "output_tokens_per_gpu_s": round(1000 / pace / gpus, 1),
        }
    return figures


def _time_samples(decoder) -> list[float]:
    """Wrap `decoder.generate` to add up the virtual seconds samples spend in it (the lock-step
    runner does not call it: its total stays 0)."""
    total = [0.0]
    generate = decoder.generate

    async def timed(*args, **kwargs):
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await generate(*args, **kwargs)
        finally:
            total[0] += loop.time() - started

    decoder.generate = timed
    return total


def _where_sample_time_goes(sample_s: float, samples: int, backends: dict) -> dict:
    """A sample's mean seconds by where its requests were: each model's engine (waiting for a step,
    prefill, decode) and API process, the build process's loop, and the rest (predictor calls and
    the engine's own turns between requests)."""
    places = {
        f"{role}_{place}": seconds / samples
        for role, backend in backends.items() for place, seconds in backend.request_seconds.items()
        if place != "client"
    }
    places["client_loop"] = sum(b.request_seconds["client"] for b in backends.values()) / samples
    mean = sample_s / samples
    places["other"] = mean - sum(places.values())
    return {"seconds_per_sample": round(mean, 2),
            "share": {place: round(seconds / mean, 3) for place, seconds in places.items()}}


def run_projection(world_root: str | Path, settings: ProjectionSettings = ProjectionSettings(), on_mode=None) -> dict:
    """Every mode of `settings` on the latency model; figures per mode and the ratios that matter."""
    from tessy_core.model_loading import load_pretrained

    world_root = Path(world_root)
    tokenizers = {role: load_pretrained("AutoTokenizer", world_root / "models" / role) for role in ("teacher", "student")}
    for tokenizer in tokenizers.values():
        tokenizer.model_max_length = 1 << 30  # the simulated traces outgrow the tiny models' context: only counted
    pools = TextPools.from_world_corpus(world_root / "corpora")
    figures = {}
    for mode in settings.modes:
        figures[mode] = run_virtual(_run_mode(mode, settings, world_root, tokenizers, pools))
        if on_mode is not None:
            on_mode(mode, figures[mode])

    def ratio(a: str, b: str, key: str = "s_per_1k_output_tokens", within: str | None = None) -> float | None:
        def value(mode: str):
            found = figures.get(mode, {})
            return ((found.get(within) or {}) if within else found).get(key)

        x, y = value(a), value(b)
        return round(x / y, 3) if x and y else None

    return {
        "projection": "a model of GPU vLLM replicas on a virtual clock, not a measurement (docs/sizing.md)",
        "settings": settings.model_dump(mode="json"),
        "modes": figures,
        "ratios": {
            # Time per output token on the same deployment (teacher_only leaves its student GPUs idle).
            "tessy_vs_teacher_only": ratio("tessy", "teacher_only"),
            # The same in the steady state (more samples than slots): the build's own regime.
            "tessy_vs_teacher_only_steady": ratio("tessy", "teacher_only", "steady_s_per_1k_output_tokens"),
            "lockstep_vs_tessy_steady": ratio("lockstep_standin", "tessy", "steady_s_per_1k_output_tokens"),
            # GPU-hours of the projected build, each mode counting only the GPUs it uses.
            "tessy_vs_teacher_only_gpu_hours": ratio("tessy", "teacher_only", "gpu_hours", within="projected"),
            "lockstep_vs_tessy": ratio("lockstep_standin", "tessy"),
            "tessy_stream_vs_tessy": ratio("tessy_stream", "tessy"),
            "targets": {"tessy_vs_teacher_only_max": 1.3, "lockstep_vs_tessy_min": 1.5},
        },
    }

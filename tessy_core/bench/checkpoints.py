"""What checkpointing running samples costs: engine steps per second with checkpoints off and every
N steps, measured in one process on the same samples.

The models are an in-process imitation that answers instantly (or after a fixed latency), so the
figure isolates the engine plus the checkpoint writes (`BuildWorkspace.save_checkpoint`: JSON,
atomic rename, no fsync) from inference. With zero latency this is the worst case; a real server
takes ~0.1 s or more per request, and the relative cost shrinks accordingly.

    tessy bench checkpoints --samples 16 --words 200 --latency-ms 0
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from tessy_core.backends.base import Completion, SamplingParams, TokenScores
from tessy_core.builder.shards import checkpoint_sink
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.chat import ChatFormat
from tessy_core.config import FAMILY_MARKERS, EngineConfig, ModelFamily, SamplingConfig
from tessy_core.engine.loop import CooperativeDecoder, Participant
from tessy_core.engine.records import Role, SampleRequest
from tessy_core.engine.runner import run_samples
from tessy_core.predictors.lexicon import LexiconPredictor


class _ImitationBackend:
    """Continues a trace the way a student or a teacher would, with predictable handovers: the
    student writes " Okay s<w>" (handover at the capability word), the teacher " v<w> = <w> Thus"
    (handover at "Thus"); after `words` words the thinking ends; answers are one line."""

    def __init__(self, role: Role, words: int, latency_s: float):
        self.role = role
        self.words = words
        self.latency_s = latency_s
        self.requests = 0

    @property
    def model_id(self) -> str:
        return f"imitation:{self.role.value}"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def complete(
        self, prompt: str, *, max_tokens: int, sampling: SamplingParams, stop: Sequence[str] = (), affinity_key=None
    ) -> Completion:
        self.requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if prompt.endswith(("\n</think>\n\n", "<|channel|>final<|message|>")):
            return Completion("print(1)", 2, "stop")
        done = len(prompt.split("\x00", 1)[-1].split())
        if done >= self.words:
            return Completion("", 0, "stop", stop_string=stop[0] if stop else None)
        text = f" Okay s{done}" if self.role is Role.student else f" v{done} = {done} Thus"
        return Completion(text, len(text.split()), "length")

    async def score(self, prompt: str, continuation: str, *, affinity_key=None) -> TokenScores:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _decoder(engine: EngineConfig, words: int, latency_s: float) -> CooperativeDecoder:
    def participant(role: Role, family: ModelFamily, phrases: list[str]) -> Participant:
        markers = FAMILY_MARKERS[family]
        # "\x00" separates the problem from the trace so the imitation can count the trace's words.
        chat = ChatFormat(lambda problem: f"{problem}\x00", markers)
        return Participant(
            role=role, backend=_ImitationBackend(role, words, latency_s), chat=chat, span_tokens=8,
            sampling=SamplingConfig(), send_seed=False, predictor=LexiconPredictor(phrases),
        )

    return CooperativeDecoder(
        participant(Role.teacher, ModelFamily.harmony, ["Thus"]),
        participant(Role.student, ModelFamily.qwen3, ["Okay"]),
        engine,
        config_hash="bench-checkpoints",
    )


async def _run_once(
    checkpoint_every: int | None, samples: int, concurrency: int, words: int, latency_s: float, work_dir: Path,
    offload: bool,
) -> dict[str, Any]:
    engine = EngineConfig(
        max_thinking_tokens=words * 4, max_answer_tokens=16, concurrency=concurrency,
        checkpoint_every=checkpoint_every or 1, repetition_check_every=10_000,
    )
    decoder = _decoder(engine, words, latency_s)
    workspace = BuildWorkspace(work_dir, f"bench-{checkpoint_every}-{time.monotonic_ns()}")
    save = checkpoint_sink(workspace) if offload else None
    written = 0

    async def sink(state) -> None:
        nonlocal written
        if save is not None:
            await save(state)
        else:
            workspace.save_checkpoint(state)
        written += 1

    requests = [SampleRequest(sample_id=f"s{i:04d}", prompt_id=f"p{i}", problem=f"Problem {i}") for i in range(samples)]
    started = time.perf_counter()
    summary = await run_samples(
        decoder, requests, concurrency=concurrency, checkpoint=sink if checkpoint_every else None,
        on_result=lambda result: workspace.drop_checkpoint(result.sample_id),
    )
    wall = time.perf_counter() - started
    steps = sum(u.requests for u in summary.usage.values())
    if summary.samples_failed:
        raise RuntimeError(f"bench samples failed: {summary.failure_reasons}")
    return {"steps": steps, "checkpoints": written, "wall_s": wall}


def run_checkpoint_bench(
    *,
    samples: int = 16,
    concurrency: int = 8,
    words: int = 200,
    latency_ms: float = 0.0,
    every: Sequence[int] = (20, 5, 1),
    repeats: int = 3,
    work_dir: Path | None = None,
    offload: bool = True,
) -> dict[str, Any]:
    """Steps/s per setting (best of `repeats`, settings interleaved) and the slowdown vs off.

    `offload`: write checkpoints as builds do (`shards.checkpoint_sink`, off the event loop);
    False writes them on the loop, which shows what that costs."""
    settings: list[int | None] = [None, *every]
    best: dict[int | None, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for _ in range(repeats):
            for setting in settings:
                run = asyncio.run(_run_once(setting, samples, concurrency, words, latency_ms / 1000, Path(tmp), offload))
                if setting not in best or run["wall_s"] < best[setting]["wall_s"]:
                    best[setting] = run
    off = best[None]
    rows = []
    for setting in settings:
        run = best[setting]
        extra = run["wall_s"] - off["wall_s"]
        rows.append({
            "checkpoint_every": setting or "off",
            "steps": run["steps"],
            "checkpoints": run["checkpoints"],
            "steps_per_s": round(run["steps"] / run["wall_s"], 1),
            "slowdown_vs_off": round(run["wall_s"] / off["wall_s"], 3),
            "ms_per_checkpoint": round(1000 * extra / run["checkpoints"], 3) if run["checkpoints"] else None,
        })
    return {
        "samples": samples, "concurrency": concurrency, "thinking_words": words, "latency_ms": latency_ms,
        "repeats": repeats, "checkpoints_off_the_event_loop": offload, "rows": rows,
    }

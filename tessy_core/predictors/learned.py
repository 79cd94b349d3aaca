"""A learned boundary predictor: a 2-label causal token classifier over the recent trace.

The label at position i is the kind of token i+1, so the classifier decides, as it reads the stream,
whether the NEXT token starts a span of the other kind. The published predictors (Qwen3 token
classifiers for GPT-OSS-120B / Qwen3-8B) load the same way from a local folder.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.batching import MicroBatcher
from tessy_core.predictors.stops import load_handover_stops

METADATA_FILE = "tessy_predictor.json"
# Characters of context re-read per call; generous for the token window (bytes-per-token is ~3-5).
_CHARS_PER_TOKEN_BOUND = 8


class LearnedPredictor:
    """`incremental` (default): calls that name a `stream` read only the text that is new since that
    stream's previous call, through a per-stream KV cache (`predictors/incremental.py`); calls
    without one re-read the last window in full. `cpu_threads` (on the CPU): torch threads per batch
    (`PredictorConfig.cpu_threads`); None leaves torch's own setting."""

    # find_boundary takes `stream` and `lookahead` (the engine passes them only to predictors that say so).
    reads_streams = True

    def __init__(
        self,
        path: str | Path,
        *,
        window_tokens: int | None = None,
        device: str = "auto",
        max_batch: int = 64,
        incremental: bool = True,
        max_streams: int = 512,
        cpu_threads: int | None = 1,
    ):
        import torch
        from tessy_core.model_loading import load_pretrained
        from tessy_core.predictors.devices import resolve_device

        path = Path(path)
        device = resolve_device(device)
        self._torch = torch
        self.tokenizer = load_pretrained("AutoTokenizer", path)
        if not self.tokenizer.is_fast:
            raise ValueError(f"{path}: the predictor needs a fast tokenizer (character offsets)")
        self.model = load_pretrained("AutoModelForTokenClassification", path).to(device).eval()
        if self.model.config.num_labels != 2:
            raise ValueError(f"{path}: expected a 2-label token classifier, got {self.model.config.num_labels} labels")
        metadata = json.loads((path / METADATA_FILE).read_text()) if (path / METADATA_FILE).exists() else {}
        # The window it was trained with, unless the config sets one (released folders: 200).
        self.window_tokens = window_tokens or int(metadata.get("window_tokens", 200))
        self._device = device
        self.device = device
        self._cpu_threads = cpu_threads if device == "cpu" else None
        self._pad_id = pad_id_of(self.tokenizer)
        self._identity = f"learned:{metadata.get('name', path.name)}@{metadata.get('version', 'local')}"
        self._batcher: MicroBatcher[list[int], list[int]] = MicroBatcher(self._predict_batch, max_batch)
        self._reader = None
        if incremental:
            from tessy_core.predictors.incremental import IncrementalReader

            self._reader = IncrementalReader(self.model, self.tokenizer, self.window_tokens, device, max_streams)
            self._step_batcher: MicroBatcher = MicroBatcher(self._read_steps, max_batch)
        self.handover_stops: tuple[str, ...] = load_handover_stops(path)
        # CPU seconds spent by this predictor (tokenizing on the caller, the model on worker threads),
        # tokens run through the model, and calls.
        self._cpu_s = 0.0
        self._window_tokens_read = 0
        self._calls = 0

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def batcher(self) -> MicroBatcher:
        return self._batcher

    async def find_boundary(
        self,
        context: str,
        chunk: str,
        target: TokenKind,
        min_offset: int = 0,
        *,
        stream: str | None = None,
        lookahead: bool = False,
    ) -> int | None:
        """See `BoundaryPredictor`. `stream` names the trace this call continues (one sample's, for
        this predictor): its earlier reading is reused. `lookahead`: the chunk ends at a word end, so
        the predicted kind of the token AFTER it counts too; when that is `target`, the answer is
        `len(chunk)` (hand over right there, nothing to throw away)."""
        self._calls += 1
        if stream is not None and self._reader is not None:
            state = self._reader.acquire(stream)
            if state is not None:
                try:
                    return await self._find_incremental(state, context, chunk, target, min_offset, lookahead)
                finally:
                    state.busy = False
        started = time.thread_time()
        tail = context[-self.window_tokens * _CHARS_PER_TOKEN_BOUND :]
        encoded = self.tokenizer(tail + chunk, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"][-self.window_tokens :]
        offsets = encoded["offset_mapping"][-self.window_tokens :]
        self._cpu_s += time.thread_time() - started
        next_kinds = await self._batcher.submit(ids)
        chunk_start = len(tail)
        for position in range(1, len(ids)):
            start = offsets[position][0] - chunk_start
            if start < min_offset:
                continue
            if next_kinds[position - 1] == target:
                return start
        if lookahead and ids and next_kinds[-1] == target and len(chunk) >= max(min_offset, 1):
            return len(chunk)
        return None

    async def _find_incremental(self, state, context: str, chunk: str, target: TokenKind, min_offset: int, lookahead: bool):
        started = time.thread_time()
        chunk_start = len(context)
        step = self._reader.plan(state, context + chunk, chunk_start)
        self._cpu_s += time.thread_time() - started
        await self._step_batcher.submit(step)
        starts, kinds = state.starts, state.kinds
        first = max(1, bisect.bisect_left(starts, chunk_start + min_offset))
        for position in range(first, len(kinds)):
            if kinds[position - 1] == target:
                return starts[position] - chunk_start
        if lookahead and kinds and kinds[-1] == target and len(chunk) >= max(min_offset, 1):
            return len(chunk)
        return None

    def release(self, stream: str) -> None:
        """The trace `stream` is done: drop its cached reading."""
        if self._reader is not None:
            self._reader.release(stream)

    def stats(self) -> dict:
        """CPU seconds and tokens this predictor spent, for cost reports (`tessy bench decode`)."""
        reader = self._reader
        return {
            "identity": self._identity,
            "incremental": reader is not None,
            "calls": self._calls,
            "cpu_s": round(self._cpu_s + (reader.cpu_s if reader else 0.0), 4),
            "tokens_read": self._window_tokens_read + (reader.tokens_read if reader else 0),
            "forward_calls": self._batcher.batches + (self._step_batcher.batches if reader else 0),
        }

    def _read_steps(self, steps: list) -> list[None]:
        with self._torch_threads():
            self._reader.run(steps)
        return [None] * len(steps)

    def _predict_batch(self, batch: list[list[int]]) -> list[list[int]]:
        started = time.thread_time()
        try:
            with self._torch_threads():
                return predict_next_kinds(self.model, batch, self._pad_id, self._device)
        finally:
            self._cpu_s += time.thread_time() - started
            self._window_tokens_read += sum(len(ids) for ids in batch)

    @contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """On the CPU, a batch runs on `cpu_threads` of torch's intra-op threads (set on the worker
        thread for the batch only, so nothing else in the process is changed)."""
        if self._cpu_threads is None:
            yield
            return
        torch = self._torch
        previous = torch.get_num_threads()
        torch.set_num_threads(self._cpu_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    async def aclose(self) -> None:
        return None


def predict_next_kinds(model, batch: list[list[int]], pad_id: int, device: str = "cpu") -> list[list[int]]:
    """Per window of token ids, the predicted kind of the token AFTER each position (argmax of the
    2-label head). Shared by the engine and by training's evaluation, so both read a model alike."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
    predicted = logits.argmax(-1).cpu().tolist()
    return [row[: len(ids)] for row, ids in zip(predicted, batch)]


def pad_id_of(tokenizer) -> int:
    """The id padded windows are filled with (masked out, so any id works when none is defined)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

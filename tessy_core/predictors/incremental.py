"""Incremental reading for a learned boundary predictor: each stream keeps its tokens and KV cache and
the classifier reads only what is new, in batches across streams.

A stream is one sample's trace as one predictor reads it (the engine names it by sample, attempt
and role). Each call gives the stream's whole text; the reader finds where it differs from the text
it read last (text thrown away after a cut is rolled back), re-tokenizes from a safe point at or
before that place, and runs only the new tokens through the model, attending to the cached keys and
values of the tokens before them. The cache slides: it keeps the last `window_tokens` tokens, so
each new token sees about the same context as the full-window predictor gives it (the last window
of tokens), at the cost of the new tokens only, not of the window.

Safe re-tokenization points: the tokenizer's pre-tokenizer splits text before a space that follows
a non-space character (byte-level BPE of GPT-2, Qwen and GPT-OSS alike), so text tokenized from
such a point gives the tokens the whole text would; the kept tokens end at one.

Positions: the keys in the cache carry rotary position encodings, which depend only on relative
offsets, so a sliding cache keeps working as positions grow; positions restart (the window is read
again) before they pass the model's `max_position_embeddings`.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

# A stream whose tokens since the last safe point are more than this many is read again from the
# window's start rather than searched further (text without spaces: code, long numbers).
_MAX_BACKOFF_TOKENS = 64
# Token lists kept per stream beyond the cache (a chunk longer than the window is still scanned).
_LIST_WINDOWS = 4


@dataclass
class _Stream:
    text: str = ""
    # Per token of the text read so far (the last ones only): id, character span, and the predicted
    # kind of the NEXT token (the classifier's output at this position).
    ids: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    # Cached keys/values (per layer, [1, kv_heads, L, head_dim]) of the last L tokens of `ids`.
    past: list | None = None
    cached: int = 0
    # Position id of ids[0] (positions restart when the window is read again).
    position_of_first: int = 0
    busy: bool = False


@dataclass
class Step:
    """What one call asks the model to read for one stream (planned on the caller's thread)."""

    stream: _Stream
    new_ids: list[int]
    new_starts: list[int]
    new_ends: list[int]
    keep: int  # tokens of the stream's lists still valid
    recompute: int  # of those, how many (the last ones) are read again because the cache lost them
    text: str


class IncrementalReader:
    """Per-stream token lists and KV caches over one token classifier (see the module docstring)."""

    def __init__(self, model, tokenizer, window_tokens: int, device: str = "cpu", max_streams: int = 512):
        self.model = model
        self.tokenizer = tokenizer
        self.window = window_tokens
        self.device = device
        self.max_streams = max_streams
        self._streams: "OrderedDict[str, _Stream]" = OrderedDict()
        config = model.config
        self._max_position = int(getattr(config, "max_position_embeddings", 0) or 0) or 1 << 30
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._lock = threading.Lock()
        # Figures: tokens run through the model, forward calls, CPU seconds on the worker thread.
        self.tokens_read = 0
        self.forward_calls = 0
        self.cpu_s = 0.0

    # -- caller's side ---------------------------------------------------------------------------

    def acquire(self, key: str) -> _Stream | None:
        """The stream `key` (created when new), or None while another call uses it."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(key)
        if stream.busy:
            return None
        stream.busy = True
        return stream

    def release(self, key: str) -> None:
        """Forget a stream (its sample is done)."""
        stream = self._streams.get(key)
        if stream is not None and not stream.busy:
            del self._streams[key]

    def plan(self, stream: _Stream, text: str, need_from: int) -> Step:
        """What to read so that every token of `text` from character `need_from` on has a prediction."""
        old = stream.text
        same = len(old) if text.startswith(old) else _common_prefix(old, text)
        keep = _kept_tokens(stream, text, same)
        restart = stream.ends[keep - 1] if keep else _fresh_start(text, need_from, self.window)
        encoded = self.tokenizer(text[restart:], add_special_tokens=False, return_offsets_mapping=True)
        new_ids = list(encoded["input_ids"])
        new_starts = [restart + a for a, _ in encoded["offset_mapping"]]
        new_ends = [restart + b for _, b in encoded["offset_mapping"]]
        if not keep:
            # Fresh read: tokens more than a window before the first needed one are never seen.
            first_needed = _index_after(new_ends, need_from)
            drop = max(0, first_needed - self.window)
            new_ids, new_starts, new_ends = new_ids[drop:], new_starts[drop:], new_ends[drop:]
        # Tokens the cache still holds after a rollback to `keep`.
        dropped = len(stream.ids) - keep
        still_cached = max(0, stream.cached - dropped) if keep else 0
        recompute = 0
        if keep and still_cached < min(keep, self.window // 2):
            # A rollback took more than half the cached context with it: read the window again.
            recompute = min(keep, self.window - 1)
        position = stream.position_of_first + keep + len(new_ids)
        if keep and position > self._max_position - 1:
            recompute = min(keep, self.window - 1)
        return Step(stream, new_ids, new_starts, new_ends, keep, recompute, text)

    # -- worker thread ---------------------------------------------------------------------------

    def run(self, steps: list[Step]) -> None:
        """Read the planned tokens of several streams, batched; updates each stream."""
        started = time.thread_time()
        with self._lock:
            prepared = [self._prepare(step) for step in steps]
            # Similar lengths batch together: a long read (a fresh window) would pad every short one.
            short = [p for p in prepared if len(p[1]) <= 16]
            long = [p for p in prepared if len(p[1]) > 16]
            for group in (short, long):
                for begin in range(0, len(group), 64):
                    self._forward(group[begin : begin + 64])
        self.cpu_s += time.thread_time() - started

    def _prepare(self, step: Step):
        """Roll the stream back to `keep` tokens; what to feed: (step, input ids, first position)."""
        stream = step.stream
        dropped = len(stream.ids) - step.keep
        for name in ("ids", "starts", "ends", "kinds"):
            del getattr(stream, name)[step.keep :]
        if not step.keep:
            stream.position_of_first = 0
            past, cached = None, 0
        elif step.recompute:
            # Read the last `recompute` kept tokens again, positions restarting at 0.
            first = step.keep - step.recompute
            stream.position_of_first = -first
            del stream.kinds[first:]
            past, cached = None, 0
        else:
            cached = max(0, stream.cached - dropped)
            past = [(k[:, :, :cached], v[:, :, :cached]) for k, v in stream.past] if cached else None
            # Slide: the first new token sees the last window of tokens.
            if cached > self.window - 1:
                cut = cached - (self.window - 1)
                past = [(k[:, :, cut:], v[:, :, cut:]) for k, v in past]
                cached -= cut
        inputs = (stream.ids[step.keep - step.recompute : step.keep] if step.recompute else []) + step.new_ids
        first_position = stream.position_of_first + step.keep - step.recompute
        stream.ids.extend(step.new_ids)
        stream.starts.extend(step.new_starts)
        stream.ends.extend(step.new_ends)
        stream.text = step.text
        stream.past, stream.cached = past, cached
        return step, inputs, first_position

    def _forward(self, group) -> None:
        import torch
        from transformers import DynamicCache

        group = [g for g in group if g[1]]
        if not group:
            return
        batch = len(group)
        lengths = [g[0].stream.cached for g in group]
        widths = [len(g[1]) for g in group]
        past_max, new_max = max(lengths), max(widths)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((batch, new_max), pad_id, dtype=torch.long)
        attention = torch.zeros((batch, past_max + new_max), dtype=torch.long)
        positions = torch.zeros((batch, new_max), dtype=torch.long)
        for row, (step, inputs, first_position) in enumerate(group):
            input_ids[row, : len(inputs)] = torch.tensor(inputs, dtype=torch.long)
            attention[row, past_max - lengths[row] : past_max + len(inputs)] = 1
            positions[row] = first_position + torch.arange(new_max)
        kwargs = {}
        if past_max:
            layers = []
            template = next(g[0].stream.past for g in group if g[0].stream.cached)
            for layer, (k0, v0) in enumerate(template):
                keys = k0.new_zeros((batch, k0.shape[1], past_max, k0.shape[3]))
                values = v0.new_zeros((batch, v0.shape[1], past_max, v0.shape[3]))
                for row, (step, _, _) in enumerate(group):
                    if lengths[row]:
                        k, v = step.stream.past[layer]
                        keys[row, :, past_max - lengths[row] :] = k[0]
                        values[row, :, past_max - lengths[row] :] = v[0]
                layers.append((keys, values))
            kwargs[self._cache_kwarg] = DynamicCache(ddp_cache_data=layers)
        else:
            kwargs[self._cache_kwarg] = DynamicCache()
        with torch.inference_mode():
            output = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                position_ids=positions.to(self.device),
                use_cache=True,
                **kwargs,
            )
        cache = kwargs[self._cache_kwarg]
        kinds = output.logits.argmax(-1).cpu().tolist()
        self.forward_calls += 1
        self.tokens_read += sum(widths)
        for row, (step, inputs, _) in enumerate(group):
            stream = step.stream
            stream.kinds.extend(kinds[row][: len(inputs)])
            keep_from = past_max - lengths[row]
            total = lengths[row] + len(inputs)
            start = max(0, total - self.window)  # the cache slides: the last window of tokens
            stream.past = [
                (layer.keys[row : row + 1, :, keep_from + start : keep_from + total].clone(),
                 layer.values[row : row + 1, :, keep_from + start : keep_from + total].clone())
                for layer in cache.layers
            ]
            stream.cached = total - start
            _trim_lists(stream, self.window * _LIST_WINDOWS)


def _trim_lists(stream: _Stream, limit: int) -> None:
    excess = len(stream.ids) - max(limit, stream.cached)
    if excess > 0:
        for name in ("ids", "starts", "ends", "kinds"):
            del getattr(stream, name)[:excess]
        stream.position_of_first += excess


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings (binary search over C-level compares)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _index_after(ends: list[int], position: int) -> int:
    """Number of tokens that end at or before `position`."""
    import bisect

    return bisect.bisect_right(ends, position)


def _kept_tokens(stream: _Stream, text: str, same: int) -> int:
    """How many of the stream's tokens stay: they end strictly inside the unchanged prefix, at a safe
    re-tokenization point (a space after a non-space)."""
    if not stream.ids:
        return 0
    keep = _index_after(stream.ends, same)
    # Kinds are known only for tokens that were read (a rollback removes them with the tokens).
    keep = min(keep, len(stream.kinds))
    floor = max(0, keep - _MAX_BACKOFF_TOKENS)
    while keep > floor:
        end = stream.ends[keep - 1]
        if end < len(text) and end <= same and text[end] == " " and not text[end - 1].isspace():
            return keep
        keep -= 1
    return 0


def _fresh_start(text: str, need_from: int, window: int) -> int:
    """Where a stream with nothing kept starts tokenizing: a safe point far enough before the first
    needed character to give it a window of context (at most ~8 characters per token)."""
    start = max(0, need_from - window * 8)
    if start == 0:
        return 0
    space = text.find(" ", start)
    while space != -1 and space < need_from and text[space - 1].isspace():
        space = text.find(" ", space + 1)
    return space if space != -1 and space <= need_from else start

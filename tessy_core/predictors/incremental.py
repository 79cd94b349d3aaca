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

# Imported by `LearnedPredictor` only (itself loaded lazily): transformers is already there.
from transformers.cache_utils import DynamicLayer

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
    # Cached keys and values of the last `cached` tokens of `ids`: columns [cache_start, cache_start +
    # cached) of one preallocated tensor [layers, 2, kv_heads, capacity, head_dim].
    past: object | None = None
    cache_start: int = 0
    cached: int = 0
    # Position id of ids[0] (positions restart when the window is read again).
    position_of_first: int = 0
    # Tokens dropped from the front of the lists since the last fresh read (figures only).
    dropped: int = 0
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
        # The fast tokenizer's own Rust tokenizer: the same ids and offsets, a fraction of the overhead.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._encode = (
            (lambda text: backend.encode(text, add_special_tokens=False))
            if backend is not None
            else (lambda text: _Encoded(tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)))
        )
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
        same = len(old) if text.startswith(old) else common_prefix_length(old, text)
        keep = _kept_tokens(stream, text, same)
        restart = stream.ends[keep - 1] if keep else _fresh_start(text, need_from, self.window)
        encoded = self._encode(text[restart:])
        new_ids = list(encoded.ids)
        new_starts = [restart + a for a, _ in encoded.offsets]
        new_ends = [restart + b for _, b in encoded.offsets]
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
            stream.dropped = 0
            stream.cache_start = stream.cached = 0
        elif step.recompute:
            # Read the last `recompute` kept tokens again, positions restarting at 0.
            first = step.keep - step.recompute
            stream.position_of_first = -first
            del stream.kinds[first:]
            stream.cache_start = stream.cached = 0
        else:
            stream.cached = max(0, stream.cached - dropped)
            # Slide: the first new token sees the last window of tokens.
            cut = max(0, stream.cached - (self.window - 1))
            stream.cache_start += cut
            stream.cached -= cut
        inputs = (stream.ids[step.keep - step.recompute : step.keep] if step.recompute else []) + step.new_ids
        first_position = stream.position_of_first + step.keep - step.recompute
        stream.ids.extend(step.new_ids)
        stream.starts.extend(step.new_starts)
        stream.ends.extend(step.new_ends)
        stream.text = step.text
        return step, inputs, first_position

    def _forward(self, group) -> None:
        import torch
        from transformers.cache_utils import Cache

        group = [g for g in group if g[1]]
        if not group:
            return
        batch = len(group)
        lengths = [g[0].stream.cached for g in group]
        widths = [len(g[1]) for g in group]
        past_max, new_max = max(lengths), max(widths)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Caches left-padded to one length, new tokens right-padded: one forward for every stream.
        input_ids = torch.tensor([inputs + [pad_id] * (new_max - len(inputs)) for _, inputs, _ in group])
        attention = torch.tensor(
            [[0] * (past_max - n) + [1] * (n + w) + [0] * (new_max - w) for n, w in zip(lengths, widths)]
        )
        positions = torch.tensor([list(range(first, first + new_max)) for _, _, first in group])
        shape = self._kv_shape()
        # One buffer for the batch: the past is copied in once, the model writes the new keys and
        # values in place (no per-layer concatenation), and they are copied out per stream.
        buffer = torch.zeros((shape[0], 2, batch, shape[1], past_max + new_max, shape[2]), dtype=self._kv_dtype())
        for row, (step, _, _) in enumerate(group):
            stream, length = step.stream, lengths[row]
            if length:
                start = stream.cache_start
                buffer[:, :, row, :, past_max - length : past_max] = stream.past[:, :, :, start : start + length]
        cache = Cache(layers=[_BufferLayer(buffer[i, 0], buffer[i, 1], past_max) for i in range(shape[0])])
        with torch.inference_mode():
            output = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                position_ids=positions.to(self.device),
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            kinds = output.logits.argmax(-1).cpu().tolist()
        self.forward_calls += 1
        self.tokens_read += sum(widths)
        for row, (step, inputs, _) in enumerate(group):
            stream = step.stream
            stream.kinds.extend(kinds[row][: len(inputs)])
            self._store(stream, buffer[:, :, row, :, past_max : past_max + len(inputs)])
            _trim_lists(stream, self.window * _LIST_WINDOWS)

    def _kv_shape(self) -> tuple[int, int, int]:
        config = self.model.config
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return config.num_hidden_layers, heads, dim

    def _kv_dtype(self):
        return next(self.model.parameters()).dtype

    def _store(self, stream: _Stream, new) -> None:
        """Append new keys/values ([layers, 2, heads, n, dim]) to the stream's storage, keeping the
        last window; the storage has room to append for a while before it is compacted."""
        import torch

        n = new.shape[3]
        capacity = self.window + max(64, self.window // 2)
        if stream.past is None or stream.past.shape[3] < capacity:
            shape = self._kv_shape()
            grown = torch.zeros((shape[0], 2, shape[1], capacity, shape[2]), dtype=new.dtype)
            if stream.past is not None and stream.cached:
                grown[:, :, :, : stream.cached] = stream.past[:, :, :, stream.cache_start : stream.cache_start + stream.cached]
            stream.past, stream.cache_start = grown, 0
        end = stream.cache_start + stream.cached
        if end + n <= capacity:
            stream.past[:, :, :, end : end + n] = new
            stream.cached += n
        else:  # compact: the last window of (kept + new) moves to the front
            keep_old = max(0, min(stream.cached, self.window - n))
            if keep_old:
                stream.past[:, :, :, :keep_old] = stream.past[:, :, :, end - keep_old : end].clone()
            take = min(n, self.window)
            stream.past[:, :, :, keep_old : keep_old + take] = new[:, :, :, n - take :]
            stream.cache_start, stream.cached = 0, keep_old + take
        if stream.cached > self.window:  # the cache slides: the last window of tokens
            stream.cache_start += stream.cached - self.window
            stream.cached = self.window


class _BufferLayer(DynamicLayer):
    """A cache layer over a preallocated [batch, heads, past + new, dim] buffer: the past is in
    place, `update` writes the new keys/values after it and returns views (no concatenation)."""

    def __init__(self, keys, values, past: int):
        super().__init__()
        self.is_initialized = True
        self._keys_buffer, self._values_buffer, self._past = keys, values, past
        self.keys, self.values = keys[:, :, :past], values[:, :, :past]
        self.device = keys.device

    def update(self, key_states, value_states, *args, **kwargs):
        end = self._past + key_states.shape[-2]
        self._keys_buffer[:, :, self._past : end] = key_states
        self._values_buffer[:, :, self._past : end] = value_states
        self.keys, self.values = self._keys_buffer[:, :, :end], self._values_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.keys.shape[-2]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.keys.shape[-2] + query_length, 0

    def get_max_length(self) -> int:
        return -1


class _Encoded:
    def __init__(self, encoded) -> None:
        self.ids, self.offsets = encoded["input_ids"], encoded["offset_mapping"]


def _trim_lists(stream: _Stream, limit: int) -> None:
    excess = len(stream.ids) - max(limit, stream.cached)
    if excess > 0:
        for name in ("ids", "starts", "ends", "kinds"):
            del getattr(stream, name)[:excess]
        stream.position_of_first += excess
        stream.dropped += excess


def common_prefix_length(a: str, b: str) -> int:
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

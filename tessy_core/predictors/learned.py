"""A learned boundary predictor: a 2-label causal token classifier over the recent trace.

The label at position i is the kind of token i+1, so the classifier decides, as it reads the stream,
whether the NEXT token starts a span of the other kind. The published predictors (Qwen3 token
classifiers for GPT-OSS-120B / Qwen3-8B) load the same way from a local folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.batching import MicroBatcher

METADATA_FILE = "tessy_predictor.json"
# Characters of context re-read per call; generous for the token window (bytes-per-token is ~3-5).
_CHARS_PER_TOKEN_BOUND = 8


class LearnedPredictor:
    def __init__(self, path: str | Path, *, window_tokens: int | None = None, device: str = "auto", max_batch: int = 64):
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
        self._pad_id = pad_id_of(self.tokenizer)
        self._identity = f"learned:{metadata.get('name', path.name)}@{metadata.get('version', 'local')}"
        self._batcher: MicroBatcher[list[int], list[int]] = MicroBatcher(self._predict_batch, max_batch)

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def batcher(self) -> MicroBatcher:
        return self._batcher

    async def find_boundary(self, context: str, chunk: str, target: TokenKind, min_offset: int = 0) -> int | None:
        tail = context[-self.window_tokens * _CHARS_PER_TOKEN_BOUND :]
        encoded = self.tokenizer(tail + chunk, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"][-self.window_tokens :]
        offsets = encoded["offset_mapping"][-self.window_tokens :]
        next_kinds = await self._batcher.submit(ids)
        chunk_start = len(tail)
        for position in range(1, len(ids)):
            start = offsets[position][0] - chunk_start
            if start < min_offset:
                continue
            if next_kinds[position - 1] == target:
                return start
        return None

    def _predict_batch(self, batch: list[list[int]]) -> list[list[int]]:
        return predict_next_kinds(self.model, batch, self._pad_id, self._device)

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

"""In-process transformers backend: CPU development, the small model world and unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Sequence

from tessy_core.backends.base import Completion, SamplingParams, TokenScores
from tessy_core.chat import load_tokenizer

# Sampling draws from torch's process-wide RNG: a seeded request is reproducible only if no other
# generate call in the process (another model's included) draws while it runs.
_SAMPLING_LOCK = threading.Lock()


class TransformersBackend:
    """Serves one causal LM in this process. Requests run one at a time on a worker thread, and
    sampled ones one at a time across all models of the process (see `_SAMPLING_LOCK`)."""

    def __init__(self, path: str, *, name: str | None = None, device: str = "cpu", revision: str | None = None):
        import torch
        from tessy_core.model_loading import load_pretrained

        self._torch = torch
        self.tokenizer = load_tokenizer(path, revision)
        self.model = load_pretrained("AutoModelForCausalLM", path, revision=revision).to(device).eval()
        self._device = device
        self._model_id = f"{name or path}@{revision or 'local'}"
        self._lock = threading.Lock()
        special = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        self._end_token_ids = {t for t in special if t is not None}

    @property
    def model_id(self) -> str:
        return self._model_id

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str] = (),
        affinity_key: str | None = None,
    ) -> Completion:
        return await asyncio.to_thread(self._complete_sync, prompt, max_tokens, sampling, tuple(stop))

    async def score(self, prompt: str, continuation: str, *, affinity_key: str | None = None) -> TokenScores:
        return await asyncio.to_thread(self._score_sync, prompt, continuation)

    async def aclose(self) -> None:
        return None

    def _complete_sync(self, prompt: str, max_tokens: int, sampling: SamplingParams, stop: tuple[str, ...]) -> Completion:
        torch = self._torch
        ids = self.tokenizer.encode(prompt, add_special_tokens=False, return_tensors="pt").to(self._device)
        greedy = sampling.temperature == 0.0
        kwargs = dict(
            max_new_tokens=max_tokens,
            do_sample=not greedy,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            eos_token_id=sorted(self._end_token_ids) or None,
        )
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=max(sampling.top_k, 0) or None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        with _SAMPLING_LOCK if not greedy else contextlib.nullcontext(), self._lock, torch.inference_mode():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        new_ids = out[0, ids.shape[1]:].tolist()
        ended_by_eos = bool(new_ids) and new_ids[-1] in self._end_token_ids
        if ended_by_eos:
            new_ids = new_ids[:-1]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        for end in (t for t in (self.tokenizer.eos_token, self.tokenizer.pad_token) if t):
            text = text.replace(end, "")
        matched, cut = _first_stop(text, stop)
        if matched is not None:
            return Completion(text[:cut], len(new_ids), "stop", matched)
        return Completion(text, len(new_ids), "stop" if ended_by_eos else "length")

    def _score_sync(self, prompt: str, continuation: str) -> TokenScores:
        torch = self._torch
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        cont_ids = self.tokenizer.encode(continuation, add_special_tokens=False)
        if not cont_ids:
            return TokenScores()
        ids = torch.tensor([prompt_ids + cont_ids], device=self._device)
        with self._lock, torch.inference_mode():
            logits = self.model(ids).logits[0].float()
        logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
        picked = logprobs.gather(1, torch.tensor(cont_ids, device=self._device)[:, None])[:, 0]
        return TokenScores(self.tokenizer.convert_ids_to_tokens(cont_ids), picked.tolist())


def _first_stop(text: str, stop: Sequence[str]) -> tuple[str | None, int]:
    """The earliest stop string in `text` and where it starts."""
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return None, len(text)
    cut, matched = min(hits)
    return matched, cut

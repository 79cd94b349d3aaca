"""Tiny random-weight models for mechanics tests: two models that differ in everything.

Their text is noise; they prove plumbing (templates, markers, tokenizers, servers), not quality.
The trained small model world (tessy_core.toyworld) is what proves quality.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

STUDENT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEACHER_TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant{% endif %}"
)

_CORPUS = [
    "Okay, let's see. The problem asks for the sum of the list. Hmm, so we read n numbers.",
    "We need to compute the maximum. Compute: iterate and keep the best. Thus print it.",
    "Wait, what if the list is empty? Let me think. Then the answer is zero.",
    "def solve(): print(sum(map(int, input().split())))",
    "Check: gcd(12, 18) = 6. Now implement with a loop while b: a, b = b, a % b.",
]


def build_tiny_model(out_dir: Path, *, role: str, seed: int, end_probability: float | None = None) -> Path:
    """Write a tiny Qwen3 causal LM with its own BPE tokenizer and chat template into `out_dir`.

    `end_probability`: make the model's end markers (end of thinking, EOS) about this likely at
    every step under the engine's default sampling, so random text still ends its turns.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    if (out_dir / "config.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if role == "student":
        specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
        template, eos, extra = STUDENT_TEMPLATE, "<|im_end|>", ["<think>", "</think>"]
        vocab = 400
    else:
        specials = ["<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|channel|>", "<|endoftext|>"]
        template, eos, extra = TEACHER_TEMPLATE, "<|return|>", []
        vocab = 520
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=eos, pad_token="<|endoftext|>", additional_special_tokens=specials
    )
    tokenizer.add_tokens(extra)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=end_probability is None,
    )
    model = Qwen3ForCausalLM(config)
    if end_probability is not None:
        end_tokens = ["</think>", "<|im_end|>"] if role == "student" else ["<|end|>", "<|return|>"]
        _boost_end_tokens(model, tokenizer.convert_tokens_to_ids(end_tokens), end_probability)
    model.save_pretrained(out_dir)
    return out_dir


def _boost_end_tokens(model, end_ids: list[int], target: float) -> None:
    """Give every input a constant hidden direction and tie the end tokens' logits to it.

    Dimension 0 of every embedding is set to 1, so after the final norm it carries a roughly
    constant value; the end tokens' output rows weigh that dimension by a factor calibrated (on
    random inputs, temperature 0.7 / top-k 20 / top-p 0.8) to give them `target` probability.
    """
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight[:, 0] = 0.0
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randint(0, model.config.vocab_size, (8, 24), generator=generator)
        hidden = model.model(input_ids=inputs).last_hidden_state.reshape(-1, model.config.hidden_size)

        def end_mass(weight: float) -> float:
            model.lm_head.weight[end_ids, 0] = weight
            probs = torch.softmax(model.lm_head(hidden) / 0.7, dim=-1)
            top = probs.topk(20, dim=-1)
            kept = top.values / top.values.sum(-1, keepdim=True)
            # top-p 0.8: a token is kept while the mass before it is below 0.8
            kept = kept * ((kept.cumsum(-1) - kept) < 0.8)
            kept = kept / kept.sum(-1, keepdim=True)
            is_end = torch.isin(top.indices, torch.tensor(end_ids))
            return float((kept * is_end).sum(-1).mean())

        low, high = 0.0, 10.0
        for _ in range(30):
            middle = (low + high) / 2
            low, high = (middle, high) if end_mass(middle) < target else (low, middle)
        model.lm_head.weight[end_ids, 0] = (low + high) / 2


def built_once(path: Path, *, role: str, seed: int, end_probability: float | None = None) -> Path:
    """`build_tiny_model` at a fixed path, written once per machine and atomically.

    A model's path is part of the generation config, so of every sample id and seed: models at a
    fixed place make a test's draws the same in every session (a fresh temp path each session made
    each run a new draw, and a test that needs, say, a trace of two spans failed now and then)."""
    if (path / "config.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    build_tiny_model(staging, role=role, seed=seed, end_probability=end_probability)
    try:
        staging.rename(path)  # atomic: a concurrent session sees a whole model folder or none
    except OSError:  # another session got there first; its folder is the same model
        shutil.rmtree(staging, ignore_errors=True)
    return path

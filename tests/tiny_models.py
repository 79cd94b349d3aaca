"""Tiny random-weight models for mechanics tests: two models that differ in everything.

Their text is noise; they prove plumbing (templates, markers, tokenizers, servers), not quality.
The trained small model world (tessy_core.toyworld) is what proves quality.
"""

from __future__ import annotations

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


def build_tiny_model(out_dir: Path, *, role: str, seed: int) -> Path:
    """Write a tiny Qwen3 causal LM with its own BPE tokenizer and chat template into `out_dir`."""
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
        tie_word_embeddings=True,
    )
    Qwen3ForCausalLM(config).save_pretrained(out_dir)
    return out_dir

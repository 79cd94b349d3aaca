"""Model folders that speak the real families' formats, built at test time (no weights needed).

Each folder holds a small BPE tokenizer carrying the family's real special tokens and a chat
template written by this project that renders exactly the strings the family's published template
renders for the conversations tessy sends (a system message or none, one user message, the
generation prompt; and a finished assistant turn, as SFT tooling renders a published sample).
Those strings are documented facts of each format:

- Qwen3: `<|im_start|>ROLE\\nTEXT<|im_end|>\\n` per message; the generation prompt is
  `<|im_start|>assistant\\n` (`<think>\\n\\n</think>\\n\\n` follows only with thinking off); `<think>`
  and `</think>` are ordinary added tokens (not special); the last assistant turn renders its
  reasoning (the text before `</think>`) as `<think>\\nREASONING\\n</think>\\n\\n` then the content.
- Harmony (gpt-oss): a system message `<|start|>system<|message|>` with the model identity, the
  knowledge cutoff (2024-06), `Current date: ` (from `strftime_now`), `Reasoning: ` (medium unless
  `reasoning_effort` is given), then `# Valid channels: analysis, commentary, final. Channel must be
  included for every message.<|end|>`; a system/developer message becomes a developer message
  `<|start|>developer<|message|># Instructions\\n\\nTEXT\\n\\n<|end|>`; a user message is
  `<|start|>user<|message|>TEXT<|end|>`; the generation prompt is `<|start|>assistant`; a training
  turn is `<|start|>assistant<|channel|>analysis<|message|>THINKING<|end|>` then
  `<|start|>assistant<|channel|>final<|message|>ANSWER<|return|>`.
"""

from __future__ import annotations

import json
from pathlib import Path

QWEN3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN3_ADDED = ["<think>", "</think>"]  # plain added tokens: kept by skip_special_tokens=True
HARMONY_SPECIAL = [
    "<|endoftext|>", "<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>", "<|constrain|>",
]

NL = "{{ '\\n' }}"

QWEN3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{% set content = message['content'] %}{% set reasoning = '' %}"
    "{% if '</think>' in content %}"
    "{% set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{% set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{% endif %}"
    "<|im_start|>assistant" + NL +
    "{% if loop.last %}<think>" + NL + "{{ reasoning.strip('\\n') }}" + NL + "</think>" + NL + NL + "{% endif %}"
    "{{ content }}<|im_end|>" + NL +
    "{% else %}"
    "<|im_start|>{{ message['role'] }}" + NL + "{{ message['content'] }}<|im_end|>" + NL +
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant" + NL +
    "{% if enable_thinking is defined and enable_thinking is false %}<think>" + NL + NL + "</think>" + NL + NL
    + "{% endif %}{% endif %}"
)

HARMONY_SYSTEM = (
    "<|start|>system<|message|>"
    "{% if model_identity is defined %}{{ model_identity }}{% else %}You are ChatGPT, a large language model "
    "trained by OpenAI.{% endif %}" + NL +
    "Knowledge cutoff: 2024-06" + NL +
    "Current date: {{ strftime_now('%Y-%m-%d') }}" + NL + NL +
    "Reasoning: {% if reasoning_effort is defined %}{{ reasoning_effort }}{% else %}medium{% endif %}" + NL + NL +
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
)


def harmony_template(generation_prompt: str = "<|start|>assistant") -> str:
    """The harmony template; `generation_prompt` lets a test build a broken copy of it."""
    return (
        HARMONY_SYSTEM +
        "{% set ns = namespace(rest=messages) %}"
        "{% if messages[0]['role'] in ('system', 'developer') %}"
        "<|start|>developer<|message|># Instructions" + NL + NL + "{{ messages[0]['content'] }}" + NL + NL + "<|end|>"
        "{% set ns.rest = messages[1:] %}"
        "{% endif %}"
        "{% for message in ns.rest %}"
        "{% if message['role'] == 'user' %}<|start|>user<|message|>{{ message['content'] }}<|end|>"
        "{% elif message['role'] == 'assistant' %}"
        "{% if loop.last and not add_generation_prompt %}"
        "{% if message['thinking'] is defined %}"
        "<|start|>assistant<|channel|>analysis<|message|>{{ message['thinking'] }}<|end|>{% endif %}"
        "<|start|>assistant<|channel|>final<|message|>{{ message['content'] }}<|return|>"
        "{% else %}<|start|>assistant<|channel|>final<|message|>{{ message['content'] }}<|end|>{% endif %}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}" + generation_prompt + "{% endif %}"
    )


HARMONY_TEMPLATE = harmony_template()
# A community copy of the gpt-oss template whose generation prompt opens the final channel.
HARMONY_FINAL_CHANNEL_TEMPLATE = harmony_template("<|start|>assistant<|channel|>final<|message|>")

_CORPUS = [
    "Okay, let's see. The problem asks for the sum of the list. Hmm, so we read n numbers.",
    "We need to compute the maximum. Compute: iterate and keep the best. Thus print it.",
    "Wait, what if the list is empty? Let me think. Then the answer is zero.",
    "def solve(): print(sum(map(int, input().split())))",
    "You are ChatGPT, a large language model trained by OpenAI. Knowledge cutoff Current date Reasoning high",
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
    "system user assistant developer Instructions",
]


def build_family_tokenizer(family: str, *, chat_template: str | None = None, vocab_size: int = 600):
    """A fast tokenizer with `family`'s special tokens and (by default) its template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = QWEN3_SPECIAL if family == "qwen3" else HARMONY_SPECIAL
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>" if family == "qwen3" else "<|return|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in special if t != "<|endoftext|>"],
        clean_up_tokenization_spaces=False,
    )
    if family == "qwen3":
        tokenizer.add_tokens(QWEN3_ADDED)
    tokenizer.chat_template = chat_template or (QWEN3_TEMPLATE if family == "qwen3" else HARMONY_TEMPLATE)
    return tokenizer


def build_family_folder(
    out_dir: Path, family: str, *, chat_template: str | None = None, context_tokens: int = 40_960
) -> Path:
    """A model folder (tokenizer, chat template, config.json with its context) without weights:
    enough for everything tessy reads locally (templates, token counts, context)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_family_tokenizer(family, chat_template=chat_template)
    tokenizer.save_pretrained(out_dir)
    config = {
        "architectures": ["GptOssForCausalLM" if family == "harmony" else "Qwen3ForCausalLM"],
        "max_position_embeddings": context_tokens,
        "vocab_size": len(tokenizer),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def save_released_predictor(out_dir: Path, tokenizer_source, *, seed: int = 0) -> Path:
    """A predictor exactly as the paper's are released: a plain `save_pretrained` folder of a
    2-label Qwen3ForTokenClassification (label 1 = style, next-token shifted) with its tokenizer,
    no tessy metadata, the labels spelled out as transformers 4.x wrote them."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForTokenClassification

    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source) if isinstance(tokenizer_source, (str, Path)) else tokenizer_source
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=32, num_labels=2, max_position_embeddings=1024,
    )
    Qwen3ForTokenClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    saved = json.loads((out_dir / "config.json").read_text())
    saved.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    (out_dir / "config.json").write_text(json.dumps(saved, indent=2))
    return out_dir

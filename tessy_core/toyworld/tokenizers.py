"""Each model's chat format and its own byte-level BPE tokenizer.

The teacher speaks GPT-OSS harmony, the student Qwen3 `<think>` markup. The generation prompt comes
from the chat template saved in the tokenizer, exactly as a real model folder would provide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"

STUDENT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEACHER_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|start|>{{ message['role'] }}<|message|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant{% endif %}"
)


@dataclass(frozen=True)
class ChatMarkup:
    """How one model lays out its turn after the generation prompt."""

    family: Literal["harmony", "qwen3"]
    chat_template: str
    special_tokens: tuple[str, ...]
    # Marker tokens that are plain added tokens (kept by skip_special_tokens=True, as in Qwen3).
    added_tokens: tuple[str, ...]
    eos: str
    think_open: str
    think_end: tuple[str, ...]
    answer_open: str

    def continuation(self, thinking: str, answer: str) -> str:
        """Everything the model writes after its generation prompt."""
        return f"{self.think_open}{thinking}{self.answer_open}{answer}{self.eos}"


TEACHER_MARKUP = ChatMarkup(
    family="harmony",
    chat_template=TEACHER_CHAT_TEMPLATE,
    special_tokens=(PAD_TOKEN, "<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|channel|>"),
    added_tokens=(),
    eos="<|return|>",
    think_open="<|channel|>analysis<|message|>",
    think_end=("<|end|>",),
    answer_open="<|end|><|start|>assistant<|channel|>final<|message|>",
)

STUDENT_MARKUP = ChatMarkup(
    family="qwen3",
    chat_template=STUDENT_CHAT_TEMPLATE,
    special_tokens=(PAD_TOKEN, "<|im_start|>", "<|im_end|>"),
    added_tokens=("<think>", "</think>"),
    eos="<|im_end|>",
    think_open="<think>\n",
    think_end=("</think>",),
    answer_open="\n</think>\n\n",
)

MARKUPS: dict[str, ChatMarkup] = {"teacher": TEACHER_MARKUP, "student": STUDENT_MARKUP}


def train_tokenizer(texts: Iterable[str], markup: ChatMarkup, vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `texts` (markers excluded), wrapped with the model's chat format."""
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(markup.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=markup.eos,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in markup.special_tokens if t != PAD_TOKEN],
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    tokenizer.add_tokens(list(markup.added_tokens))
    tokenizer.chat_template = markup.chat_template
    return tokenizer


def generation_prompt(tokenizer: PreTrainedTokenizerFast, statement: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": statement}], tokenize=False, add_generation_prompt=True, enable_thinking=True
    )

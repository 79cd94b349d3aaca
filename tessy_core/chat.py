"""Each model's own prompt layout: its chat template opened in thinking mode, plus its markers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tessy_core.config import ModelConfig, ThinkingMarkers


@dataclass(frozen=True)
class ChatFormat:
    """Renders the text a model continues when it writes thinking or the final answer."""

    generation_prompt_template: "_Renderer"
    markers: ThinkingMarkers

    def thinking_prompt(self, problem: str) -> str:
        """The model's template for `problem` with its thinking opened; the shared trace follows."""
        prompt = self.generation_prompt_template(problem)
        # Some templates (e.g. newer DeepSeek-R1) already open the thinking block themselves.
        if prompt.endswith(self.markers.think_open) or prompt.rstrip().endswith(self.markers.think_open.strip()):
            return prompt
        return prompt + self.markers.think_open

    def answer_prompt(self, problem: str, thinking: str) -> str:
        """The prompt after which the model writes its final answer, given closed thinking."""
        return self.thinking_prompt(problem) + thinking.rstrip() + self.markers.answer_open

    def assistant_text(self, thinking: str, answer: str) -> str:
        """The assistant turn of a training sample in this model's format."""
        return self.markers.think_open + thinking.rstrip() + self.markers.answer_open + answer.strip()


class _Renderer:
    """Applies a tokenizer's chat template with thinking enabled."""

    def __init__(self, tokenizer, template_override: str | None):
        self._tokenizer = tokenizer
        self._template = template_override

    def __call__(self, problem: str) -> str:
        return self._tokenizer.apply_chat_template(
            [{"role": "user", "content": problem}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=True,
            chat_template=self._template,
        )


@lru_cache(maxsize=16)
def load_tokenizer(path: str, revision: str | None = None):
    """The model's own tokenizer (and chat template), from a local folder or hub id."""
    from tessy_core.model_loading import load_pretrained

    return load_pretrained("AutoTokenizer", path, revision=revision)


def chat_format_for(model: ModelConfig, tokenizer=None) -> ChatFormat:
    tokenizer = tokenizer or load_tokenizer(model.path, model.revision)
    if model.chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"model {model.name!r}: tokenizer at {model.path} has no chat template; set `chat_template` in config"
        )
    return ChatFormat(_Renderer(tokenizer, model.chat_template), model.thinking_markers)

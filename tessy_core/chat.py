"""Each model's own prompt layout: its chat template opened in thinking mode, plus its markers.

A model's template is rendered with its `TemplateOptions` (config): keyword arguments for the
template (harmony's `reasoning_effort`), a pinned date for templates that print today's date
(harmony's "Current date", from `strftime_now`), and an optional system message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as _date
from functools import lru_cache
from typing import Any, Callable

from tessy_core.config import FAMILY_ASSISTANT_HEADER, ModelConfig, TemplateOptions, ThinkingMarkers


@dataclass(frozen=True)
class ChatFormat:
    """Renders the text a model continues when it writes thinking or the final answer."""

    generation_prompt_template: Callable[[str], str]
    markers: ThinkingMarkers
    # The family's assistant header (what its generation prompt ends with), when the family is known.
    assistant_header: str | None = None

    def generation_prompt(self, problem: str) -> str:
        """The template's own generation prompt for `problem` (before the thinking is opened)."""
        return self.generation_prompt_template(problem)

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

    def stripped_signature(self, text: str) -> str | None:
        """The trace special tokens leave when a server or proxy strips them, if `text` shows one."""
        return next((s for s in self.markers.stripped_signatures if s in text), None)


def template_kwargs(options: TemplateOptions) -> dict[str, Any]:
    """The keyword arguments a template is rendered with: thinking on, then the options' own keys
    (a key set to null is not passed: it removes a family default)."""
    return {"enable_thinking": True, **{k: v for k, v in options.kwargs.items() if v is not None}}


# `strftime_now("FORMAT")` with a literal format: the call templates print today's date with.
_STRFTIME_CALL = re.compile(r"""strftime_now\(\s*(?:"([^"]*)"|'([^']*)')\s*\)""")


def pin_template_date(template: str, day: str) -> str:
    """`template` with every `strftime_now("FORMAT")` replaced by `day` in that format, so its
    text no longer depends on the day it is rendered (transformers only hands templates plain data,
    so the function itself cannot be swapped). A call left over (a format that is not a literal) is
    reported by `unpinned_date_calls`."""
    pinned = _date.fromisoformat(day)

    def literal(match: re.Match) -> str:
        text = pinned.strftime(match.group(1) if match.group(1) is not None else match.group(2))
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return _STRFTIME_CALL.sub(literal, template)


def unpinned_date_calls(template: str) -> int:
    """How many places of `template` still read today's date."""
    return template.count("strftime_now")


def template_messages(problem: str, options: TemplateOptions) -> list[dict[str, str]]:
    messages = [] if options.system_message is None else [{"role": "system", "content": options.system_message}]
    return [*messages, {"role": "user", "content": problem}]


class _Renderer:
    """Applies a tokenizer's chat template with thinking enabled and the model's template options."""

    def __init__(self, tokenizer, template_override: str | None, options: TemplateOptions = TemplateOptions()):
        self._tokenizer = tokenizer
        template = template_override
        if options.date is not None:
            template = pin_template_date(template or tokenizer.get_chat_template(), options.date)
        self.template = template  # None: the tokenizer's own, unchanged
        self._options = options
        self._kwargs = template_kwargs(options)
        # Every request of a sample renders the same problem: render it once.
        self._cached = lru_cache(maxsize=4096)(self._render)

    def __call__(self, problem: str) -> str:
        return self._cached(problem)

    def _render(self, problem: str) -> str:
        return self._tokenizer.apply_chat_template(
            template_messages(problem, self._options),
            tokenize=False,
            add_generation_prompt=True,
            chat_template=self.template,
            **self._kwargs,
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
    return ChatFormat(
        _Renderer(tokenizer, model.chat_template, model.template_options),
        model.thinking_markers,
        FAMILY_ASSISTANT_HEADER[model.family],
    )

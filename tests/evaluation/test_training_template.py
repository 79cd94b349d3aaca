"""Which chat template the SFT loss mask comes from, and that it covers the assistant turn only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessy_core.evaluation.training import (
    CHATML_TRAINING_TEMPLATE,
    TemplateUnavailable,
    has_generation_markers,
    training_chat_template,
)

MESSAGES = [
    {"role": "user", "content": "Double the number."},
    {"role": "assistant", "content": "<think>\nOkay, so double it.\n</think>\n\n```python\nprint(2 * int(input()))\n```"},
]


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def test_a_chatml_student_gets_tessys_template_and_the_mask_is_the_assistant_turn(tiny_models):
    tokenizer = _tokenizer(tiny_models["student"])
    template, source = training_chat_template(tokenizer, None)
    assert source == "tessy-chatml" and template == CHATML_TRAINING_TEMPLATE
    encoded = tokenizer.apply_chat_template(MESSAGES, chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    trained = tokenizer.decode([t for t, m in zip(ids, mask) if m], skip_special_tokens=False)
    ignored = tokenizer.decode([t for t, m in zip(ids, mask) if not m], skip_special_tokens=False)
    assert trained == MESSAGES[1]["content"] + "<|im_end|>\n"
    assert ignored == "<|im_start|>user\nDouble the number.<|im_end|>\n<|im_start|>assistant\n"
    # Rendering is unchanged: the model is trained on exactly the text it is prompted with.
    assert tokenizer.decode(ids, skip_special_tokens=False) == tokenizer.apply_chat_template(MESSAGES, tokenize=False)


def test_a_template_tessy_does_not_know_is_refused_with_a_way_out(tiny_models, tmp_path):
    tokenizer = _tokenizer(tiny_models["teacher"])  # harmony-like markup, not a template TRL ships
    with pytest.raises(TemplateUnavailable, match="training.chat_template"):
        training_chat_template(tokenizer, None)
    own = tmp_path / "teacher-training.jinja"
    own.write_text(tokenizer.chat_template.replace("{{ m['content'] }}", "{% generation %}{{ m['content'] }}{% endgeneration %}"))
    template, source = training_chat_template(tokenizer, str(own))
    assert source == f"file:{own}" and has_generation_markers(template)
    plain = tmp_path / "plain.jinja"
    plain.write_text(tokenizer.chat_template)
    with pytest.raises(TemplateUnavailable, match="no \\{% generation %\\} markers"):
        training_chat_template(tokenizer, str(plain))


def test_qwen3s_own_template_gets_trls_training_variant(tiny_models):
    from trl.chat_template_utils import qwen3_chat_template

    tokenizer = _tokenizer(tiny_models["student"])
    tokenizer.chat_template = qwen3_chat_template
    template, source = training_chat_template(tokenizer, None)
    assert source == "trl" and has_generation_markers(template)

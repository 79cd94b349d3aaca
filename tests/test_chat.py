"""The exact text each family's model reads and the text a published sample holds.

The family fixtures (tests/family_fixtures.py) carry the real special tokens and render what the
real templates render, so these strings are the ones a Qwen3-8B / gpt-oss-120b run sends.
"""

from __future__ import annotations

from datetime import date

import pytest

from tessy_core.chat import chat_format_for, pin_template_date, unpinned_date_calls
from tessy_core.config import GenerationConfig, ModelConfig
from tests.family_fixtures import build_family_tokenizer

PROBLEM = "Read n numbers and print their sum."
HARMONY_SYSTEM = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: {date}\n\n"
    "Reasoning: {effort}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
)


@pytest.fixture(scope="module")
def tokenizers():
    return {"qwen3": build_family_tokenizer("qwen3"), "harmony": build_family_tokenizer("harmony")}


def _format(tokenizers, family: str, **fields):
    model = ModelConfig(name=family, path="/unused", family=family, backend="transformers", **fields)
    return chat_format_for(model, tokenizers[family])


def test_the_students_thinking_and_answer_prompts(tokenizers):
    chat = _format(tokenizers, "qwen3")
    assert chat.thinking_prompt(PROBLEM) == f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert chat.answer_prompt(PROBLEM, "Okay, so we add.\n") == (
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n<think>\nOkay, so we add.\n</think>\n\n"
    )
    assert chat.assistant_text("Okay, so we add.", "print(1)") == "<think>\nOkay, so we add.\n</think>\n\nprint(1)"


def test_the_teachers_thinking_prompt_runs_at_high_effort_on_a_pinned_date(tokenizers):
    chat = _format(tokenizers, "harmony")
    expected = (
        HARMONY_SYSTEM.format(date="2025-08-05", effort="high")
        + f"<|start|>user<|message|>{PROBLEM}<|end|><|start|>assistant<|channel|>analysis<|message|>"
    )
    assert chat.thinking_prompt(PROBLEM) == expected
    assert chat.answer_prompt(PROBLEM, "We add.") == (
        expected + "We add.<|end|><|start|>assistant<|channel|>final<|message|>"
    )
    assert chat.assistant_text("We add.", "print(1)") == (
        "<|channel|>analysis<|message|>We add.<|end|><|start|>assistant<|channel|>final<|message|>print(1)"
    )


def test_template_options_set_effort_date_and_a_system_message(tokenizers):
    chat = _format(
        tokenizers, "harmony",
        template_options={"kwargs": {"reasoning_effort": "medium"}, "date": "2026-03-01", "system_message": "Use Python."},
    )
    assert chat.thinking_prompt(PROBLEM) == (
        HARMONY_SYSTEM.format(date="2026-03-01", effort="medium")
        + "<|start|>developer<|message|># Instructions\n\nUse Python.\n\n<|end|>"
        + f"<|start|>user<|message|>{PROBLEM}<|end|><|start|>assistant<|channel|>analysis<|message|>"
    )
    student = _format(tokenizers, "qwen3", template_options={"system_message": "Use Python."})
    assert student.thinking_prompt(PROBLEM).startswith("<|im_start|>system\nUse Python.<|im_end|>\n<|im_start|>user\n")


def test_an_unpinned_date_is_todays_and_changes_the_prompt(tokenizers):
    chat = _format(tokenizers, "harmony", template_options={"date": None})
    assert f"Current date: {date.today().isoformat()}\n" in chat.thinking_prompt(PROBLEM)
    assert "Reasoning: high" in chat.thinking_prompt(PROBLEM)  # the family's effort stays


def test_pinning_rewrites_every_literal_strftime_now_call():
    template = """{{ strftime_now("%Y-%m-%d") }} {{ strftime_now('%d %B') }} {{ strftime_now(fmt) }}"""
    pinned = pin_template_date(template, "2025-08-05")
    assert pinned.startswith('{{ "2025-08-05" }} {{ "05 August" }}')
    assert unpinned_date_calls(pinned) == 1  # a computed format cannot be pinned: preflight reports it


def test_a_published_sample_renders_back_to_what_the_student_read_and_wrote(tokenizers):
    """SFT tooling renders the published messages with the student's template: the result must be
    the generation-time prompt plus what was written, token for token."""
    chat = _format(tokenizers, "qwen3")
    thinking, answer = "Okay, so we add them. Thus sum.", "print(sum(map(int, input().split())))"
    messages = [{"role": "user", "content": PROBLEM}, {"role": "assistant", "content": chat.assistant_text(thinking, answer)}]
    rendered = tokenizers["qwen3"].apply_chat_template(messages, tokenize=False)
    assert rendered == chat.answer_prompt(PROBLEM, thinking) + answer + "<|im_end|>\n"

    teacher = _format(tokenizers, "harmony")
    rendered = tokenizers["harmony"].apply_chat_template(
        [{"role": "user", "content": PROBLEM}, {"role": "assistant", "thinking": thinking, "content": answer}],
        tokenize=False,
    )
    assert rendered.endswith("<|start|>assistant" + teacher.assistant_text(thinking, answer) + "<|return|>")


def test_the_markers_are_the_families_tokens(tokenizers):
    qwen3, harmony = tokenizers["qwen3"], tokenizers["harmony"]
    for token in ("<think>", "</think>", "<|im_start|>", "<|im_end|>"):
        assert len(qwen3.encode(token, add_special_tokens=False)) == 1, token
    # <think> and </think> are ordinary text to Qwen3: a server that skips special tokens keeps them.
    ids = qwen3.encode("a</think>b<|im_end|>", add_special_tokens=False)
    assert qwen3.decode(ids, skip_special_tokens=True) == "a</think>b"
    for token in ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>"):
        assert len(harmony.encode(token, add_special_tokens=False)) == 1, token
    ids = harmony.encode("a<|end|><|start|>assistant<|channel|>final<|message|>b", add_special_tokens=False)
    assert harmony.decode(ids, skip_special_tokens=True) == "aassistantfinalb"
    chat = _format(tokenizers, "harmony")
    assert chat.stripped_signature("We add.assistantfinalprint(1)") == "assistantfinal"
    assert chat.stripped_signature("We add the assistant's final idea.") is None


def test_template_options_enter_the_config_hash():
    def config(**options):
        teacher = {"name": "t", "path": "/t", "family": "harmony", "backend": "transformers", **options}
        return GenerationConfig.model_validate({
            "teacher": teacher, "student": {"name": "s", "path": "/s", "backend": "transformers"},
            "engine": {"mode": "teacher_only"},
        })

    default = config()
    assert default.teacher.template_options.kwargs == {"reasoning_effort": "high"}
    assert default.teacher.template_options.date == "2025-08-05"
    assert config(template_options={"kwargs": {"reasoning_effort": "medium"}}).config_hash() != default.config_hash()
    assert config(template_options={"date": "2025-09-01"}).config_hash() != default.config_hash()
    assert config(template_options={"kwargs": {"reasoning_effort": "high"}}).config_hash() == default.config_hash()
    # Where a predictor runs is not what it decides.
    predictors = {"teacher_predictor": {"kind": "lexicon", "phrases": ["Thus"]}, "student_predictor": {"kind": "lexicon", "phrases": ["Okay"]}}
    base = {"teacher": {"name": "t", "path": "/t", "family": "harmony", "backend": "transformers"},
            "student": {"name": "s", "path": "/s", "backend": "transformers"}}
    on_gpu = GenerationConfig.model_validate({**base, **predictors})
    on_cpu = GenerationConfig.model_validate({**base, "teacher_predictor": {**predictors["teacher_predictor"], "device": "cpu"},
                                              "student_predictor": predictors["student_predictor"]})
    assert on_gpu.config_hash() == on_cpu.config_hash()

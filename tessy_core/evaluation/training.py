"""Fine-tune the student on a version's `messages` with TRL's SFTTrainer, loss on the assistant turn only.

Assistant-only loss needs a chat template with `{% generation %}` markers. The template used is the
first of: the config's file, the tokenizer's own (if it has the markers), TRL's training variant of
the tokenizer's template (Qwen3, Llama 3, GPT-OSS, ...), or tessy's ChatML training template when it
renders test conversations exactly like the tokenizer's own. The fine-tuned student is saved with
its original template, so it is prompted exactly like the base.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from tessy_core.evaluation.config import TrainingConfig
from tessy_core.files import write_atomic

DONE_FILE = "tessy_sft.json"

# ChatML (Qwen-style `<|im_start|>role\n...<|im_end|>\n`) with the assistant turn, its end-of-turn
# token included, inside generation markers.
CHATML_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{{ message['content'] }}<|im_end|>\n{% endgeneration %}"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_PROBES = (
    [{"role": "user", "content": "Add two numbers."},
     {"role": "assistant", "content": "<think>\nSum them.\n</think>\n\n```python\nprint(1 + 2)\n```"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"},
     {"role": "assistant", "content": "y"}, {"role": "user", "content": "z"}],
)
_GENERATION_TAGS = re.compile(r"\{%-?\s*(?:generation|endgeneration)\s*-?%\}")


class TemplateUnavailable(ValueError):
    pass


class TrainingReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_dir: str
    examples: int
    steps: int
    epochs: float
    train_loss: float | None
    first_loss: float | None
    last_loss: float | None
    assistant_tokens: int
    trained_tokens_share: float
    chat_template_source: str
    seconds: float
    reused: bool = False


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and bool(_GENERATION_TAGS.search(template or ""))


def _renders_like(tokenizer, candidate: str) -> bool:
    for messages in _PROBES:
        for generation_prompt in (False, True):
            try:
                ours = tokenizer.apply_chat_template(
                    messages[:-1] if generation_prompt else messages, tokenize=False,
                    add_generation_prompt=generation_prompt, chat_template=_GENERATION_TAGS.sub("", candidate))
                theirs = tokenizer.apply_chat_template(
                    messages[:-1] if generation_prompt else messages, tokenize=False,
                    add_generation_prompt=generation_prompt)
            except Exception:  # noqa: BLE001 - a template that cannot render a probe does not match
                return False
            if ours != theirs:
                return False
    return True


def training_chat_template(tokenizer, configured: str | None) -> tuple[str, str]:
    """(template with generation markers, where it came from) for `tokenizer`."""
    if configured:
        template = Path(configured).read_text()
        if not has_generation_markers(template):
            raise TemplateUnavailable(f"{configured}: the training template has no {{% generation %}} markers")
        return template, f"file:{configured}"
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        raise TemplateUnavailable("the student's tokenizer has no chat template; set training.chat_template")
    if has_generation_markers(own):
        return own, "tokenizer"
    from trl.chat_template_utils import get_training_chat_template

    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        patched = None
    if patched:
        return patched, "trl"
    if _renders_like(tokenizer, CHATML_TRAINING_TEMPLATE):
        return CHATML_TRAINING_TEMPLATE, "tessy-chatml"
    raise TemplateUnavailable(
        "no training variant (with {% generation %} markers) of the student's chat template is known; write one "
        "and name it in training.chat_template"
    )


def _torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def finetune(
    base_path: str,
    messages_file: Path,
    output_dir: Path,
    config: TrainingConfig,
    *,
    revision: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainingReport:
    """Fine-tune `base_path` on a `messages` JSONL (one conversation per line) into `output_dir`.

    Writes into a staging folder and renames it when done, so a half-trained student is never
    taken for a finished one. A folder that is already finished is reused.
    """
    done_file = output_dir / DONE_FILE
    if done_file.exists():
        return TrainingReport.model_validate({**json.loads(done_file.read_text()), "reused": True})

    import torch
    from datasets import load_dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tessy_core.model_loading import load_pretrained

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    tokenizer = load_pretrained("AutoTokenizer", base_path, revision=revision)
    original_template = tokenizer.chat_template
    template, template_source = training_chat_template(tokenizer, config.chat_template)
    tokenizer.chat_template = template
    dtype = torch.float32 if config.precision == "fp32" or config.device == "cpu" else _torch_dtype(config.precision)
    model = load_pretrained("AutoModelForCausalLM", base_path, revision=revision, dtype=dtype)

    if not messages_file.read_text().strip():
        raise ValueError(f"{messages_file}: the version has no training rows")
    dataset = load_dataset("json", data_files=str(messages_file), split="train")
    staging = output_dir.with_name(f".{output_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    on_gpu = config.device != "cpu"
    args = SFTConfig(
        output_dir=str(staging / "trainer"),
        max_steps=config.max_steps if config.max_steps is not None else -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps (transformers 5)
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        assistant_only_loss=True,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=on_gpu and config.precision == "bf16",
        fp16=on_gpu and config.precision == "fp16",
        use_cpu=not on_gpu,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    losses: list[float] = []

    class _Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 - TRL's signature
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                if progress is not None:
                    progress(state.global_step, state.max_steps, float(logs["loss"]))

    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[_Losses()])
    masked = _assistant_token_counts(trainer.train_dataset)
    if masked["assistant"] == 0:
        raise ValueError("no assistant tokens to train on: the chat template marks no assistant turn")
    # The trainer prints its log lines; they belong with progress on stderr (`--json` keeps stdout).
    with contextlib.redirect_stdout(sys.stderr):
        result = trainer.train()
    tokenizer.chat_template = original_template
    trainer.model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    report = TrainingReport(
        output_dir=str(output_dir),
        examples=len(dataset),
        steps=int(result.global_step),
        epochs=round(float(trainer.state.epoch or 0.0), 4),
        train_loss=round(float(result.training_loss), 6) if result.training_loss is not None else None,
        first_loss=round(losses[0], 6) if losses else None,
        last_loss=round(losses[-1], 6) if losses else None,
        assistant_tokens=masked["assistant"],
        trained_tokens_share=round(masked["assistant"] / masked["total"], 6) if masked["total"] else 0.0,
        chat_template_source=template_source,
        seconds=round(time.perf_counter() - started, 2),
    )
    write_atomic(staging / DONE_FILE, report.model_dump_json(indent=2))
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(output_dir)
    return report


def _assistant_token_counts(dataset) -> dict[str, int]:
    """Tokens in the prepared training set, and those the loss sees (labels not -100: TRL folds the
    assistant mask into `labels`)."""
    total = assistant = 0
    for row in dataset:
        total += len(row["input_ids"])
        labels: Any = row.get("labels")
        assistant += sum(1 for label in labels if label != -100) if labels is not None else 0
    return {"total": total, "assistant": assistant}

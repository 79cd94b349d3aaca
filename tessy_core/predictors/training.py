"""Train a boundary predictor: a 2-label causal token classifier over next-token windows.

`train_predictor` puts a fresh 2-way head on a base model's backbone
(`AutoModelForTokenClassification.from_pretrained(base_model, num_labels=2)`), trains it on the
windows of `labels.build_windows` (same tokenization, label shift and window as `LearnedPredictor`),
keeps the checkpoint with the best validation score, and writes a folder `LearnedPredictor` loads:
model + tokenizer + `tessy_predictor.json` + `metrics.json` + a model card (`README.md`).

Resume: every `checkpoint_every` steps the full training state (weights, optimizer, schedule, data
position, best so far) goes to `<out_dir>/checkpoints/last.pt`; calling again with the same config
and data continues from there. A finished folder is returned as is when asked again with the same
config and data, and refused (with the reason) when asked with different ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessy_core.model_loading import load_pretrained
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.evaluation import PredictorMetrics, evaluate_model
from tessy_core.predictors.labels import (
    IGNORE_INDEX,
    LabelledText,
    Window,
    build_windows,
    data_fingerprint,
)
from tessy_core.predictors.learned import METADATA_FILE, pad_id_of

__all__ = [
    "LabelledText",
    "PredictorReport",
    "PredictorTrainingConfig",
    "TrainingProgress",
    "build_windows",
    "train_predictor",
]

METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "tessy-boundary-predictor/1"


class PredictorTrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(description="folder (or hub id) of a base / causal LM; a fresh 2-label head is put on its backbone")
    name: str = Field("predictor", min_length=1, description="predictor name (model card, identity, catalog)")
    version: str = Field("1", min_length=1)
    role: Literal["teacher", "student"] | None = Field(
        None, description="whose thinking it reads: the teacher's finds style starts, the student's capability starts"
    )
    window_tokens: int = Field(200, ge=8, description="classifier tokens per window (the engine reads as many)")
    stride: int | None = Field(None, ge=1, description="tokens between training windows of one text (default: half a window)")
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=0, description="overrides epochs when set")
    learning_rate: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    batch_size: int = Field(32, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    style_weight: float = Field(1.0, gt=0, description="loss weight of style labels (they are the minority)")
    eval_every: int | None = Field(None, ge=1, description="validation every N steps (default: 4 times per epoch)")
    checkpoint_every: int | None = Field(None, ge=1, description="resumable state every N steps (default: eval_every)")
    select_metric: Literal["token_accuracy", "boundary_f1"] = "token_accuracy"
    tolerance_tokens: int = Field(0, ge=0, description="boundary matching tolerance in evaluation")
    eval_batch_size: int = Field(64, ge=1)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: leave torch's setting)")
    keep_checkpoints: bool = Field(False, description="keep checkpoints/ after training finishes")

    @model_validator(mode="after")
    def _stride_fits(self) -> "PredictorTrainingConfig":
        if self.stride is not None and self.stride > self.window_tokens:
            raise ValueError(f"stride ({self.stride}) must not exceed window_tokens ({self.window_tokens})")
        return self

    def fingerprint(self) -> str:
        """Identity of everything that shapes the trained weights."""
        shaping = self.model_dump(mode="json", exclude={"device", "threads", "keep_checkpoints", "eval_batch_size"})
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total_steps: int
    loss: float | None
    event: Literal["step", "eval", "resume", "done"]
    valid: PredictorMetrics | None = None


ProgressFn = Callable[[TrainingProgress], None]


class HistoryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int
    train_loss: float | None
    valid_token_accuracy: float
    valid_boundary_f1: float


class PredictorReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    name: str
    version: str
    role: str | None
    base_model: str
    path: str
    window_tokens: int
    fingerprint: str
    data_fingerprint: str
    train_texts: int
    valid_texts: int
    train_windows: int
    valid_windows: int
    total_steps: int
    best_step: int
    select_metric: str
    resumed_from_step: int | None = None
    baseline: PredictorMetrics = Field(description="the untrained head on the validation set")
    valid: PredictorMetrics = Field(description="the kept (best) checkpoint on the validation set")
    history: list[HistoryPoint]
    train_seconds: float
    created_at: str

    def catalog_metrics(self) -> dict[str, float]:
        return self.valid.flat()


@contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _score(metrics: PredictorMetrics, select_metric: str) -> float:
    return metrics.token_accuracy if select_metric == "token_accuracy" else metrics.boundary_f1


def _collate(windows: Sequence[Window], pad_id: int):
    import torch

    width = max(len(w.input_ids) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(windows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(windows), width), dtype=torch.long)
    for row, window in enumerate(windows):
        length = len(window.input_ids)
        input_ids[row, :length] = torch.tensor(window.input_ids, dtype=torch.long)
        labels[row, :length] = torch.tensor(window.labels, dtype=torch.long)
        attention[row, :length] = 1
    return input_ids, attention, labels


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_folder(model, tokenizer, folder: Path) -> None:
    """Replace `folder` with the model + tokenizer, never leaving a half-written one behind."""
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


def train_predictor(
    train: Sequence[LabelledText],
    valid: Sequence[LabelledText],
    config: PredictorTrainingConfig,
    out_dir: str | Path,
    progress: ProgressFn | None = None,
) -> PredictorReport:
    """Train, keep the best validation checkpoint, and write a predictor folder into `out_dir`."""
    import torch

    out_dir = Path(out_dir)
    if not train:
        raise ValueError("no training texts")
    if not valid:
        raise ValueError("no validation texts (the kept checkpoint is chosen on them)")
    data_id = hashlib.sha256(f"{data_fingerprint(train)}:{data_fingerprint(valid)}".encode()).hexdigest()
    finished = _finished_report(out_dir, config, data_id)
    if finished is not None:
        return finished
    if config.threads:
        torch.set_num_threads(config.threads)

    tokenizer = load_pretrained("AutoTokenizer", config.base_model)
    if not tokenizer.is_fast:
        raise ValueError(f"{config.base_model}: a fast tokenizer is needed (character offsets)")
    train_windows = build_windows(train, tokenizer, config.window_tokens, config.stride)
    valid_texts = list(valid)
    if not train_windows:
        raise ValueError("no training window: every text is shorter than two tokens")
    steps_per_epoch = math.ceil(len(train_windows) / config.batch_size)
    total_steps = config.max_steps if config.max_steps is not None else max(1, math.ceil(config.epochs * steps_per_epoch))
    eval_every = config.eval_every or max(1, steps_per_epoch // 4)
    checkpoint_every = config.checkpoint_every or eval_every

    torch.manual_seed(config.seed)
    with _quiet_transformers():  # the fresh head is expected, not news worth a load report
        model = load_pretrained(
            "AutoModelForTokenClassification",
            config.base_model,
            num_labels=2,
            id2label={int(TokenKind.CAPABILITY): "capability", int(TokenKind.STYLE): "style"},
            label2id={"capability": int(TokenKind.CAPABILITY), "style": int(TokenKind.STYLE)},
        ).to(config.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = int(config.warmup_ratio * total_steps)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        remaining = max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / remaining)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    class_weights = torch.tensor([1.0, config.style_weight], device=config.device)
    pad_id = pad_id_of(tokenizer)

    def validate() -> PredictorMetrics:
        return evaluate_model(
            model, tokenizer, valid_texts, config.window_tokens, batch_size=config.eval_batch_size,
            tolerance_tokens=config.tolerance_tokens, device=config.device,
        )

    checkpoints = out_dir / CHECKPOINT_DIR
    state_path, best_dir = checkpoints / "last.pt", checkpoints / "best"
    checkpoints.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    step, resumed_from = 0, None
    history: list[HistoryPoint] = []
    if state_path.exists():
        state = torch.load(state_path, map_location=config.device, weights_only=False)
        if state["fingerprint"] != config.fingerprint() or state["data_fingerprint"] != data_id:
            raise ValueError(
                f"{out_dir} holds a checkpoint of another training run (different config or data); "
                "use a new out_dir or version, or delete its checkpoints/ to start over"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step = resumed_from = state["step"]
        baseline = PredictorMetrics.model_validate(state["baseline"])
        best_score, best_step = state["best_score"], state["best_step"]
        history = [HistoryPoint.model_validate(point) for point in state["history"]]
        started -= state["train_seconds"]
        if progress:
            progress(TrainingProgress(step, total_steps, None, "resume"))
    else:
        baseline = validate()
        best_score, best_step = _score(baseline, config.select_metric), 0
        _save_folder(model, tokenizer, best_dir)

    def save_state() -> None:
        _atomic_torch_save(
            {
                "fingerprint": config.fingerprint(), "data_fingerprint": data_id, "step": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                "baseline": baseline.model_dump(), "best_score": best_score, "best_step": best_step,
                "history": [point.model_dump() for point in history],
                "train_seconds": time.perf_counter() - started,
            },
            state_path,
        )

    model.train()
    running: list[float] = []
    while step < total_steps:
        epoch, position = divmod(step, steps_per_epoch)
        order = _epoch_order(len(train_windows), config.seed, epoch)
        batch_indices = order[position * config.batch_size : (position + 1) * config.batch_size]
        input_ids, attention, labels = _collate([train_windows[i] for i in batch_indices], pad_id)
        logits = model(input_ids=input_ids.to(config.device), attention_mask=attention.to(config.device)).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, 2).float(), labels.to(config.device).reshape(-1), weight=class_weights,
            ignore_index=IGNORE_INDEX,
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        running.append(loss.item())
        if progress:
            progress(TrainingProgress(step, total_steps, running[-1], "step"))
        if step % eval_every == 0 or step == total_steps:
            metrics = validate()
            train_loss = sum(running) / len(running) if running else None
            running = []
            history.append(
                HistoryPoint(
                    step=step, train_loss=train_loss, valid_token_accuracy=metrics.token_accuracy,
                    valid_boundary_f1=metrics.boundary_f1,
                )
            )
            score = _score(metrics, config.select_metric)
            if score > best_score:
                best_score, best_step = score, step
                _save_folder(model, tokenizer, best_dir)
            if progress:
                progress(TrainingProgress(step, total_steps, train_loss, "eval", metrics))
        if step % checkpoint_every == 0 or step == total_steps:
            save_state()

    best = load_pretrained("AutoModelForTokenClassification", best_dir).to(config.device)
    valid_metrics = evaluate_model(
        best, tokenizer, valid_texts, config.window_tokens, batch_size=config.eval_batch_size,
        tolerance_tokens=config.tolerance_tokens, device=config.device,
    )
    report = PredictorReport(
        name=config.name, version=config.version, role=config.role, base_model=config.base_model,
        path=str(out_dir), window_tokens=config.window_tokens, fingerprint=config.fingerprint(),
        data_fingerprint=data_id, train_texts=len(train), valid_texts=len(valid_texts),
        train_windows=len(train_windows),
        valid_windows=len(build_windows(valid_texts, tokenizer, config.window_tokens, max(1, config.window_tokens // 4))),
        total_steps=total_steps, best_step=best_step, select_metric=config.select_metric,
        resumed_from_step=resumed_from, baseline=baseline, valid=valid_metrics, history=history,
        train_seconds=round(time.perf_counter() - started, 3), created_at=datetime.now(UTC).isoformat(),
    )
    if config.role is not None:
        # The handover stop strings the engine sends to the servers, from these same labels.
        from tessy_core.predictors.stops import mine_handover_stops, write_handover_stops

        write_handover_stops(out_dir, mine_handover_stops(((t.text, t.style_spans) for t in train), config.role))
    _publish_folder(best_dir, out_dir, config, report)
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    if progress:
        progress(TrainingProgress(step, total_steps, None, "done", valid_metrics))
    return report


def _finished_report(out_dir: Path, config: PredictorTrainingConfig, data_id: str) -> PredictorReport | None:
    metrics_path = out_dir / METRICS_FILE
    if not metrics_path.exists():
        return None
    report = PredictorReport.model_validate_json(metrics_path.read_text())
    if report.fingerprint != config.fingerprint() or report.data_fingerprint != data_id:
        raise ValueError(
            f"{out_dir} already holds predictor {report.name}@{report.version} trained with another config or "
            "data; predictor folders are immutable versions, so train into a new folder / version"
        )
    return report


def _publish_folder(best_dir: Path, out_dir: Path, config: PredictorTrainingConfig, report: PredictorReport) -> None:
    """Copy the kept weights into `out_dir` with metadata, metrics and card; metrics.json goes last
    because its presence marks the folder finished."""
    for item in best_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, out_dir / item.name)
    metadata = {
        "format": FORMAT,
        "name": config.name,
        "version": config.version,
        "role": config.role,
        "window_tokens": config.window_tokens,
        "label_shift": 1,
        "labels": {"0": "capability", "1": "style"},
        "base_model": config.base_model,
        "fingerprint": report.fingerprint,
        "data_fingerprint": report.data_fingerprint,
        "created_at": report.created_at,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    (out_dir / CARD_FILE).write_text(render_card(report, config))
    tmp = out_dir / (METRICS_FILE + ".tmp")
    tmp.write_text(report.model_dump_json(indent=2) + "\n")
    os.replace(tmp, out_dir / METRICS_FILE)


def render_card(report: PredictorReport, config: PredictorTrainingConfig) -> str:
    role_line = {
        "teacher": "Reads the teacher's thinking; the engine asks it where the first STYLE token of a teacher chunk is.",
        "student": "Reads the student's thinking; the engine asks it where the first CAPABILITY token of a student chunk is.",
        None: "Role not set.",
    }[report.role]

    def row(label: str, m: PredictorMetrics) -> str:
        return (
            f"| {label} | {m.token_accuracy:.4f} | {m.style_f1:.4f} | {m.style_starts.precision:.4f} / "
            f"{m.style_starts.recall:.4f} / {m.style_starts.f1:.4f} | {m.capability_starts.precision:.4f} / "
            f"{m.capability_starts.recall:.4f} / {m.capability_starts.f1:.4f} |"
        )

    return "\n".join(
        [
            "---",
            "library_name: transformers",
            "pipeline_tag: token-classification",
            "tags: [tessy, boundary-predictor]",
            f"base_model: {json.dumps(report.base_model)}",
            "---",
            "",
            f"# Boundary predictor `{report.name}` version {report.version}",
            "",
            role_line,
            "",
            "A 2-label causal token classifier (0 = capability, 1 = style). The output at position i is "
            "the kind of token i+1; it reads the last "
            f"{report.window_tokens} tokens of the thinking text (no problem statement, no special tokens).",
            "Load it with `tessy_core.predictors.learned.LearnedPredictor(folder)` or "
            "`AutoModelForTokenClassification.from_pretrained(folder)`.",
            "",
            "## Training",
            "",
            f"- base model: `{report.base_model}`",
            f"- texts: {report.train_texts} train / {report.valid_texts} validation; windows: "
            f"{report.train_windows} / {report.valid_windows}",
            f"- steps: {report.total_steps}; kept step {report.best_step} (best validation {report.select_metric})",
            f"- lr {config.learning_rate}, batch {config.batch_size}, style loss weight {config.style_weight}, seed {config.seed}",
            f"- config fingerprint `{report.fingerprint}`, data fingerprint `{report.data_fingerprint[:16]}`",
            f"- training time {report.train_seconds:.1f} s",
            "",
            "## Validation",
            "",
            "Boundaries: the first token of a run of one kind (style starts = what a teacher predictor "
            f"finds; capability starts = what a student predictor finds), matched within {report.valid.tolerance_tokens} tokens.",
            "",
            "| checkpoint | token accuracy | style-token F1 | style starts P / R / F1 | capability starts P / R / F1 |",
            "|---|---|---|---|---|",
            row("untrained head", report.baseline),
            row("kept", report.valid),
            "",
        ]
    )

"""Builds a decoder from configuration: loads tokenizers, backends and predictors (the I/O side)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tessy_core.backends import ServedContextBackend, build_backend
from tessy_core.chat import chat_format_for, load_tokenizer
from tessy_core.config import GenerationConfig, Mode, ModelConfig, PredictorConfig
from tessy_core.engine.loop import CooperativeDecoder, Participant
from tessy_core.engine.modes import mode_plan
from tessy_core.engine.records import Role
from tessy_core.predictors import build_predictor


async def _participant(
    role: Role, model: ModelConfig, predictor: PredictorConfig | None, interleaved: bool
) -> Participant:
    backend = build_backend(model)
    limits = [context_tokens(model)]
    if isinstance(backend, ServedContextBackend):
        limits.append(await backend.served_context_tokens())
    known = [limit for limit in limits if limit is not None]
    return Participant(
        role=role,
        backend=backend,
        chat=chat_format_for(model, load_tokenizer(model.path, model.revision)),
        span_tokens=model.span_tokens,
        sampling=model.sampling,
        send_seed=model.send_seed,
        predictor=build_predictor(predictor) if interleaved and predictor else None,
        context_tokens=min(known) if known else None,
    )


def context_tokens(model: ModelConfig) -> int | None:
    """The model's context length from its local folder's config.json, if it has one (the
    servers' own limit, when smaller, is asked for when the decoder opens)."""
    path = Path(model.path) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)  # multimodal configs nest the language model's
    value = config.get("max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


@asynccontextmanager
async def open_decoder(config: GenerationConfig, mode: Mode | None = None) -> AsyncIterator[CooperativeDecoder]:
    """A ready decoder for `config` (optionally another mode); closes backends on exit."""
    if mode is not None:
        config = config.with_mode(mode)
    interleaved = mode_plan(config.engine.mode).interleaved
    teacher = await _participant(Role.teacher, config.teacher, config.teacher_predictor, interleaved)
    student = await _participant(Role.student, config.student, config.student_predictor, interleaved)
    try:
        yield CooperativeDecoder(teacher, student, config.engine, config.config_hash())
    finally:
        for participant in (teacher, student):
            await participant.backend.aclose()
            if participant.predictor is not None:
                await participant.predictor.aclose()

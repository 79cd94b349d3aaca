"""Inference backends behind one small interface (`Backend`), chosen by kind (`ModelConfig.backend`).

A new backend is one module with a class implementing `Backend` (and, where it can, the optional
`StreamingBackend` / `ServedContextBackend` capabilities) plus one `register_backend` call (`BACKENDS`, a `tessy_core.registry.Registry`). Entries
import their module when first used, so naming a backend costs nothing until one is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tessy_core.backends.base import (
    Backend,
    BackendError,
    Completion,
    SamplingParams,
    ServedContextBackend,
    StreamingBackend,
    TextWatcher,
    TokenScores,
)
from tessy_core.registry import Registry

if TYPE_CHECKING:
    from tessy_core.config import ModelConfig

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "SamplingParams",
    "ServedContextBackend",
    "StreamingBackend",
    "TextWatcher",
    "TokenScores",
    "build_backend",
    "register_backend",
]

BackendFactory = Callable[["ModelConfig"], Backend]


def _vllm_http(model: ModelConfig) -> Backend:
    from tessy_core.backends.vllm_http import VllmHttpBackend

    return VllmHttpBackend.from_config(model)


def _transformers(model: ModelConfig) -> Backend:
    from tessy_core.backends.transformers_local import TransformersBackend

    return TransformersBackend(model.path, name=model.name, device=model.device, revision=model.revision)


# kind -> factory from a ModelConfig. `http` is vLLM's HTTP dialect (see `vllm_http`).
BACKENDS: Registry[BackendFactory] = Registry("backend")
BACKENDS.register("http", _vllm_http)
BACKENDS.register("transformers", _transformers)
register_backend = BACKENDS.register


def build_backend(model: ModelConfig) -> Backend:
    """The backend a `ModelConfig` asks for."""
    return BACKENDS.get(model.backend)(model)

"""Backends are chosen by kind from one registry; the engine asks for capabilities, not classes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tessy_core.backends import (
    ServedContextBackend,
    StreamingBackend,
    build_backend,
    register_backend,
)
from tessy_core.backends.transformers_local import TransformersBackend
from tessy_core.backends.vllm_http import VllmHttpBackend
from tessy_core.config import ModelConfig
from tests.backends.test_vllm_http import CharTokenizer


async def test_the_http_kind_is_the_vllm_dialect_and_reports_its_served_context(monkeypatch) -> None:
    monkeypatch.setattr("tessy_core.backends.vllm_http.load_tokenizer", lambda path, revision=None: CharTokenizer())
    model = ModelConfig(name="student", path="/models/student", endpoints=["http://127.0.0.1:9/v1"])
    backend = build_backend(model)
    try:
        assert type(backend) is VllmHttpBackend
        assert isinstance(backend, StreamingBackend)
        assert isinstance(backend, ServedContextBackend)
    finally:
        await backend.aclose()
    # the in-process backend knows no served limit beyond the model folder's
    assert not hasattr(TransformersBackend, "served_context_tokens")


def test_a_new_backend_is_one_registration(scoped_registries) -> None:
    made = object()
    register_backend("echo", lambda model: made)
    assert build_backend(SimpleNamespace(backend="echo")) is made
    with pytest.raises(ValueError, match="already registered"):
        register_backend("echo", lambda model: made)
    with pytest.raises(ValueError, match="unknown backend 'sglang'; known: echo, http, transformers"):
        build_backend(SimpleNamespace(backend="sglang"))

"""`open_decoder` builds each participant from the backend registry and asks backends for
capabilities (a served context limit), not for concrete classes."""

from __future__ import annotations

import pytest

from tessy_core import backends
from tessy_core.config import GenerationConfig
from tessy_core.engine.factory import context_tokens, open_decoder
from tessy_core.engine.records import Role
from tessy_core.registry import Registry


class _Backend:
    """Enough of a `Backend` to build a decoder (it is never asked to generate)."""

    def __init__(self, model) -> None:
        self.model_id = f"{model.name}@fake"
        self.closed = False

    async def complete(self, prompt, **kwargs):
        raise AssertionError("not used")

    async def score(self, prompt, continuation, **kwargs):
        raise AssertionError("not used")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def aclose(self) -> None:
        self.closed = True


class _ServedBackend(_Backend):
    """A backend whose servers run with less context than the model folder declares."""

    async def served_context_tokens(self) -> int | None:
        return 100


@pytest.fixture
def generation(tiny_models) -> GenerationConfig:
    return GenerationConfig.model_validate({
        "teacher": {"name": "teacher", "path": str(tiny_models["teacher"]), "family": "harmony",
                    "backend": "transformers", "span_tokens": 6},
        "student": {"name": "student", "path": str(tiny_models["student"]), "family": "qwen3",
                    "backend": "transformers", "span_tokens": 3},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["Okay"]},
    })


async def test_a_served_context_limit_caps_the_participant(monkeypatch, generation) -> None:
    def by_role(model):
        return _ServedBackend(model) if model.name == "teacher" else _Backend(model)

    monkeypatch.setattr(backends, "BACKENDS", Registry("backend"))
    backends.BACKENDS.register("transformers", by_role)
    folder_limit = context_tokens(generation.teacher)
    assert folder_limit is not None and folder_limit > 100

    async with open_decoder(generation) as decoder:
        teacher, student = decoder.participants[Role.teacher], decoder.participants[Role.student]
        assert teacher.context_tokens == 100  # the servers' limit, smaller than the folder's
        assert student.context_tokens == context_tokens(generation.student)  # no served limit to ask for
    assert teacher.backend.closed and student.backend.closed

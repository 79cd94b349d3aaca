"""Inference backends behind one small interface (`Backend`)."""

from tessy_core.backends.base import (
    Backend,
    BackendError,
    Completion,
    SamplingParams,
    StreamingBackend,
    TextWatcher,
    TokenScores,
)

__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "SamplingParams",
    "StreamingBackend",
    "TextWatcher",
    "TokenScores",
    "build_backend",
]


def build_backend(model) -> Backend:
    """The backend a `ModelConfig` asks for."""
    if model.backend == "transformers":
        from tessy_core.backends.transformers_local import TransformersBackend

        return TransformersBackend(model.path, name=model.name, device=model.device, revision=model.revision)
    from tessy_core.backends.openai_http import OpenAIHTTPBackend

    return OpenAIHTTPBackend.from_config(model)

"""The old name of `vllm_http` (the backend speaks vLLM's dialect), for callers not yet moved to it."""

from tessy_core.backends.vllm_http import VllmHttpBackend as OpenAIHTTPBackend

__all__ = ["OpenAIHTTPBackend"]

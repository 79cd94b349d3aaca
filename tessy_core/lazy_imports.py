"""Thread-safe access to transformers' top-level names.

transformers resolves names such as `AutoModelForCausalLM` lazily on first access, and two threads
doing that first access at once can fail with ImportError (seen with two build shards loading
their models in a thread pool). Code that may load models from several threads imports through here.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

_lock = threading.Lock()


def transformers_names(*names: str) -> tuple[Any, ...]:
    with _lock:
        module = importlib.import_module("transformers")
        return tuple(getattr(module, name) for name in names)

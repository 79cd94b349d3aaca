"""Thread-safe `from_pretrained`: every model and tokenizer load in tessy goes through here.

transformers resolves names such as `AutoModelForCausalLM` lazily on first access, and two threads
doing that first access at once can fail with ImportError (seen with two build shards loading
their models in a thread pool).

`from_pretrained` is not thread-safe either: while it loads, it swaps class-wide methods
(`PreTrainedModel.tie_weights`, `init_weights`, torch's init functions) for no-ops and puts them
back afterwards. Two loads that overlap can put back the no-ops for good, and every later load in
the process then leaves tied weights (a tied `lm_head`) untied on the meta device. Code that may
load models from several threads (Prefect's thread-pool task runner does) loads through here.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def load_pretrained(class_name: str, path: str | Path, **kwargs: Any) -> Any:
    """`transformers.<class_name>.from_pretrained(path, **kwargs)`, one load at a time per process."""
    with _lock:
        cls = getattr(importlib.import_module("transformers"), class_name)
        return cls.from_pretrained(path, **kwargs)

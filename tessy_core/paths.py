"""Where tessy keeps caches and local state."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of reusable caches (the small model world, compiled artifacts)."""
    root = Path(os.environ.get("TESSY_CACHE_DIR", Path.home() / ".cache" / "tessy"))
    root.mkdir(parents=True, exist_ok=True)
    return root

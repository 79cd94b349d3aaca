"""What identifies a configuration and a sample, in one place.

- `config_hash(payload)`: the sha256 of plain JSON data in canonical form. A build is identified by
  the hash of `BuildConfig.identity()`: the catalog finds an unfinished build to resume by it and
  the build id derives from it.
- `generation_identity(generation)`: what of a `GenerationConfig` shapes the generated text; where
  a model is served and how patiently are left out, so a rerun on other endpoints is the same work.
- `generation_hash(generation)`: the short id of that identity.
- `sample_id(prompt_id, sample_index, mode, generation_hash)`: the id of one sample. The same
  prompt, index and generation config give the same id whichever command produced the sample
  (`tessy generate`, `tessy build`); reruns skip finished work by it, and the engine seeds its
  sampling from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tessy_core.config import GenerationConfig

GENERATION_HASH_CHARS = 16
SAMPLE_ID_CHARS = 20


def canonical_json(payload: Mapping[str, Any]) -> str:
    """`payload` as canonical JSON (sorted keys, no whitespace); ValueError when it is not plain JSON."""
    try:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a config to hash must be plain JSON data: {error}") from None


def config_hash(payload: Mapping[str, Any]) -> str:
    """sha256 (hex) of `payload` as canonical JSON."""
    return _sha256(canonical_json(payload))


def generation_identity(generation: GenerationConfig) -> dict[str, Any]:
    """What of `generation` shapes the text, as plain JSON."""
    from tessy_core.config import (
        ENGINE_FIELDS_IDENTIFIED_OFF_DEFAULT,
        PREDICTOR_SERVING_FIELDS,
        SERVING_FIELDS,
        EngineConfig,
    )

    at_default = {
        name for name in ENGINE_FIELDS_IDENTIFIED_OFF_DEFAULT
        if getattr(generation.engine, name) == EngineConfig.model_fields[name].default
    }
    return generation.model_dump(
        mode="json",
        exclude={
            "teacher": set(SERVING_FIELDS),
            "student": set(SERVING_FIELDS),
            "teacher_predictor": set(PREDICTOR_SERVING_FIELDS),
            "student_predictor": set(PREDICTOR_SERVING_FIELDS),
            "engine": {"concurrency", "checkpoint_every", *at_default},
        },
    )


def generation_hash(generation: GenerationConfig) -> str:
    """The short id of `generation_identity(generation)`.

    Its JSON keeps the key/value spacing it was first computed with (`json.dumps` defaults, not the
    compact canonical form): sample ids, and with them the engine's sampling seeds, derive from it,
    so another spelling would change every sample of every dataset.
    """
    return _sha256(json.dumps(generation_identity(generation), sort_keys=True))[:GENERATION_HASH_CHARS]


def sample_id(prompt_id: str, sample_index: int, mode: str, generation_hash: str) -> str:
    """Stable id of one sample: the same prompt, index, mode and generation hash, the same id."""
    return _sha256(f"{prompt_id}/{sample_index}/{mode}/{generation_hash}")[:SAMPLE_ID_CHARS]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

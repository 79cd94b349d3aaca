"""The names configs and the command line choose from, in a module without pydantic, so the CLI
can offer them as choices without loading the config models (see docs/CONVENTIONS.md)."""

from __future__ import annotations

from enum import Enum, StrEnum


class ModelFamily(str, Enum):
    """Decides the default thinking markers (see `tessy_core.config.FAMILY_MARKERS`)."""

    qwen3 = "qwen3"  # also DeepSeek-R1-style <think> ... </think>
    harmony = "harmony"  # GPT-OSS: analysis channel, then the final channel


class Mode(str, Enum):
    """Who writes the thinking and who writes the final answer."""

    tessy = "tessy"  # interleaved thinking, student answer
    teacher_only = "teacher_only"
    student_only = "student_only"
    teacher_think = "teacher_think"  # teacher thinking, student answer
    teacher_answer = "teacher_answer"  # student thinking, teacher answer


class RowFormat(StrEnum):
    """Row shapes `tessy catalog ingest` reads (mapped in `tessy_core.catalog.formats`)."""

    AUTO = "auto"
    TESSY = "tessy"
    APPS = "apps"  # APPS and TACO
    CODECONTESTS = "codecontests"
    OPEN_R1 = "open-r1"
    LIVECODEBENCH = "livecodebench"
    PROMPT_ONLY = "prompt-only"

"""The names configs and the command line choose from, in a module without pydantic, so the CLI
can offer them as choices without loading the config models (see docs/CONVENTIONS.md)."""

from __future__ import annotations

from enum import Enum, StrEnum


class ModelFamily(str, Enum):
    """Decides the default thinking markers (see `tessy_core.config.FAMILY_MARKERS`)."""

    qwen3 = "qwen3"  # also DeepSeek-R1-style <think> ... </think>
    harmony = "harmony"  # GPT-OSS: analysis channel, then the final channel


class Mode(str, Enum):
    """The generation modes; each is a plan in `tessy_core.engine.modes` (docs/engine.md#modes)."""

    tessy = "tessy"  # interleaved thinking, student answer
    teacher_only = "teacher_only"
    student_only = "student_only"
    teacher_think = "teacher_think"  # teacher thinking, student answer
    teacher_answer = "teacher_answer"  # student thinking, teacher answer
    teacher_reference_rewrite = "teacher_reference_rewrite"  # teacher reference, student rewrites it
    student_best_of_n = "student_best_of_n"  # the teacher picks the best of N student samples
    mixture = "mixture"  # teacher_only or student_only per sample, at engine.mixture_teacher_share


class RowFormat(StrEnum):
    """Row shapes `tessy catalog ingest` reads (mapped in `tessy_core.catalog.formats`)."""

    AUTO = "auto"
    TESSY = "tessy"
    APPS = "apps"  # APPS and TACO
    CODECONTESTS = "codecontests"
    OPEN_R1 = "open-r1"
    LIVECODEBENCH = "livecodebench"
    PROMPT_ONLY = "prompt-only"

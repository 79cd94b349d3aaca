"""What a published version records about itself (`manifest.json`) and what the build hands over."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version as distribution_version
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


MANIFEST_FORMAT = 1
PACKAGE = "tessy"


def package_version() -> str:
    try:
        return distribution_version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BuildInfo(_Strict):
    """Everything about the build that the publisher cannot compute from the rows."""

    build_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    build_config: dict[str, Any] = Field(default_factory=dict, description="the build's full configuration")
    models: dict[str, Any] = Field(default_factory=dict, description="e.g. {'teacher': {...}, 'student': {...}}")
    predictors: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict, description="validation results, as the caller has them")
    figures: dict[str, Any] = Field(default_factory=dict, description="quality figures shown on the card")
    description: str = ""


class FileEntry(_Strict):
    path: str = Field(description="relative to the version folder")
    sha256: str
    bytes: int
    rows: int


class SplitEntry(_Strict):
    rows: int
    columns: dict[str, str] = Field(description="column name -> polars dtype, in column order")
    files: list[FileEntry]


class CodeVersion(_Strict):
    package: str
    version: str
    git_commit: str | None


class Manifest(_Strict):
    format: int = MANIFEST_FORMAT
    name: str
    version: int
    parent_version: int | None
    build_id: str
    created_at: datetime
    splits: dict[str, SplitEntry]
    build_config: dict[str, Any]
    models: dict[str, Any]
    predictors: dict[str, Any]
    validation: dict[str, Any]
    figures: dict[str, Any]
    description: str
    code: CodeVersion

    @property
    def row_counts(self) -> dict[str, int]:
        return {split: entry.rows for split, entry in self.splits.items()}

    @property
    def total_bytes(self) -> int:
        return sum(file.bytes for entry in self.splits.values() for file in entry.files)

    @property
    def files(self) -> list[FileEntry]:
        return [file for entry in self.splits.values() for file in entry.files]

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def current_code_version() -> CodeVersion:
    return CodeVersion(package=PACKAGE, version=package_version(), git_commit=_git_commit())


def _git_commit() -> str | None:
    """The checkout's commit, read from `.git` files (no git binary needed); `TESSY_GIT_COMMIT`
    wins, for deployments that ship without a `.git` folder."""
    if commit := os.environ.get("TESSY_GIT_COMMIT"):
        return commit
    git_dir = _git_dir(Path(__file__).resolve().parents[2])
    if git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head or None
    ref = head.removeprefix("ref: ")
    try:
        return (git_dir / ref).read_text().strip()
    except OSError:
        return _packed_ref(git_dir, ref)


def _git_dir(checkout: Path) -> Path | None:
    dot_git = checkout / ".git"
    if dot_git.is_dir():
        return dot_git
    # A linked worktree or submodule: `.git` is a file saying "gitdir: <path>".
    try:
        pointer = dot_git.read_text().strip()
    except OSError:
        return None
    if not pointer.startswith("gitdir: "):
        return None
    return (checkout / pointer.removeprefix("gitdir: ")).resolve()


def _packed_ref(git_dir: Path, ref: str) -> str | None:
    try:
        lines = (git_dir / "packed-refs").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        commit, _, name = line.partition(" ")
        if name == ref:
            return commit
    return None

"""Errors of the versioned-dataset store; every one says what to do next."""

from __future__ import annotations


class PublishError(Exception):
    """Base of every error raised by `tessy_core.publish`."""


class InvalidNameError(PublishError, ValueError):
    """A dataset name, split name or `NAME@vN` reference that the layout cannot hold."""


class InvalidSplitError(PublishError, ValueError):
    """A split frame that lacks the required columns or has duplicate or null `sample_id`s."""


class VersionExistsError(PublishError):
    """The requested version is already published: versions are immutable."""


class VersionClaimError(PublishError):
    """No version number could be claimed (too many concurrent publishers lost the race)."""


class DatasetNotFoundError(PublishError, LookupError):
    """The dataset, version or split does not exist (or is not complete yet)."""


class ChecksumMismatchError(PublishError):
    """A published file does not match the sha256 recorded in its manifest."""


class StorageError(PublishError):
    """The storage backend failed (unreachable endpoint, denied access, ...)."""


class ExportError(PublishError):
    """A row cannot be written in the requested training format."""

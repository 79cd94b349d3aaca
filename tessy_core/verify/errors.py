"""Errors of the sandbox itself (never a program's fault: those are verdicts)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox could not produce a trustworthy verdict."""


class SandboxUnavailable(SandboxError):
    """The sandbox cannot start here (missing isolation, no free uid, no compiler)."""


class ZygoteFailed(SandboxError):
    """A zygote died, hung, broke the protocol or reported an internal error; it must be replaced."""

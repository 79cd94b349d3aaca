"""Prefect flows: thin compositions of the library's build steps (`tessy_core.builder.pipeline`)."""

from flows.build import build_dataset, run_build

__all__ = ["build_dataset", "run_build"]

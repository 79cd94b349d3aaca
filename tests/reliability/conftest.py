"""Fixtures of the fault-injection suite: tiny model folders (their tokenizers and chat templates
serve the HTTP backend), moto S3, a Prefect API for `tessy build` subprocesses."""

from __future__ import annotations

from tests.builder.conftest import moto_s3, s3_base  # noqa: F401 - fixtures reused here

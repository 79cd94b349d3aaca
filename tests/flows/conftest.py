"""Flow tests publish to moto S3 too; the Prefect harness is tests/conftest.py's."""

from __future__ import annotations

import os

from tests.builder.conftest import moto_s3, s3_base  # noqa: F401 - fixtures reused here

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

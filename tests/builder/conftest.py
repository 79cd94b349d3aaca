"""The moto S3 fixtures of tests/publish, for builds that publish to S3."""

from __future__ import annotations

from tests.publish.conftest import moto_s3, s3_base  # noqa: F401 - fixtures reused here

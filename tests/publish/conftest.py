"""Rows shaped like a build's output, and a real local S3 (moto server) for the object-store tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
import pytest

from tessy_core.publish import BuildInfo, StorageConfig

S3_REGION = "eu-west-1"


def sample_rows(count: int, prefix: str = "s", accepted: bool = True) -> pl.DataFrame:
    """`count` rows with the nested provenance/quality columns of a real build."""
    rows = []
    for index in range(count):
        row = {
            "sample_id": f"{prefix}{index:04d}",
            "prompt_id": f"p{index % 7}",
            "mode": "tessy",
            "messages": [
                {"role": "user", "content": f"Sum the first {index} integers."},
                {"role": "assistant", "content": f"<think>\nOkay, so n = {index}.\n</think>\n\n{index * (index + 1) // 2}"},
            ],
            "spans": [
                {"model": "student", "start": 0, "end": 9, "switch_reason": "capability"},
                {"model": "teacher", "start": 9, "end": 20, "switch_reason": "style"},
            ],
            "verification": {"verdict": "AC" if accepted else "WA", "passed": index % 5, "total": 5},
            "quality": {"student_logprob": -0.5 - index / 100, "teacher_share": 0.7},
        }
        if not accepted:
            row["reason"] = "wrong answer"
        rows.append(row)
    return pl.DataFrame(rows)


def build_info(build_id: str = "b1") -> BuildInfo:
    return BuildInfo(
        build_id=build_id,
        build_config={"span_tokens": 10, "mode": "tessy"},
        models={"teacher": {"name": "tiny-teacher"}, "student": {"name": "tiny-student"}},
        predictors={"teacher": {"kind": "lexicon"}},
        validation={"suite": "basic", "success": True},
        figures={"accept_rate": 0.8, "teacher_token_share": 0.72},
        description="Test build.",
    )


@dataclass
class MotoS3:
    """A running moto server on a fixed port, so a test can stop and restart it."""

    host: str
    port: int
    server: object

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def storage_config(self) -> StorageConfig:
        # One attempt and short timeouts: a stopped server must fail fast, not be retried.
        return StorageConfig(
            endpoint_url=self.endpoint_url, key="testing", secret="testing", region=S3_REGION,
            connect_timeout_s=2, read_timeout_s=10, max_attempts=1,
        )

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()


@pytest.fixture
def moto_s3() -> Iterator[MotoS3]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoS3(host, port, server)
    yield moto
    moto.server.stop()


@pytest.fixture
def s3_base(moto_s3: MotoS3) -> str:
    """A fresh bucket (in a region other than us-east-1) with a prefix: `s3://bucket/prefix`."""
    import s3fs

    bucket = f"tessy-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", endpoint_url=moto_s3.endpoint_url,
        client_kwargs={"region_name": S3_REGION}, skip_instance_cache=True,
    )
    fs.mkdir(bucket, region_name=S3_REGION)
    return f"s3://{bucket}/datasets"

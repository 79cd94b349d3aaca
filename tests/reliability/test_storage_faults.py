"""Storage faults: the S3 server stopped during publish, a base dir that refuses writes, full disks
under the published datasets and under the build's work dir. No partial version becomes visible,
the error is clear, and running the build again succeeds."""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tessy_core.builder import pipeline
from tessy_core.builder.config import BuildConfig
from tessy_core.catalog import Catalog, build_status, list_dataset_versions
from tessy_core.publish import StorageError, scan
from tessy_core.publish.reader import list_versions
from tessy_core.publish.storage import Storage

from tests.builder.helpers import LENIENT_VALIDATION, seed_catalog
from tests.reliability.fake_openai import FakeOpenAIServer
from tests.reliability.helpers import http_config_dict

pytestmark = pytest.mark.slow

PROMPTS = 4


def _config(root: Path, models, endpoint: str, **overrides) -> BuildConfig:
    seed_catalog(root, PROMPTS)
    data = http_config_dict(
        root, models, [endpoint], shard_size=2, verification={"enabled": False}, validation=LENIENT_VALIDATION,
        **overrides,
    )
    return BuildConfig.model_validate(data)


def _build(config: BuildConfig) -> pipeline.BuildResult:
    """The build's steps as the flow runs them: a failure marks the build failed, then re-raises."""
    prepared = pipeline.prepare_build(config)
    try:
        shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in prepared.plan.shards]
        return pipeline.finish_build(config, prepared, shards)
    except BaseException as error:
        pipeline.fail_build(config, prepared, error)
        raise


def _assert_one_whole_version(config: BuildConfig, result, storage=None) -> None:
    assert result.status == "published" and result.counts["pending"] == 0
    assert sum(result.counts.values()) == PROMPTS
    rows = scan(config.output.base_uri, result.version, storage=storage).collect()
    assert rows.height == rows["prompt_id"].n_unique() == result.counts["published"]
    assert len(list_dataset_versions(Catalog(config.catalog_path), config.dataset)) == 1
    assert build_status(Catalog(config.catalog_path), result.build_id) == "succeeded"


@pytest.fixture
def server():
    with FakeOpenAIServer() as running:
        yield running


def test_s3_stopped_during_publish_leaves_no_version_and_a_rerun_publishes(
    tmp_path, ending_models, server, moto_s3, s3_base, monkeypatch
):
    storage = moto_s3.storage_config()
    config = _config(tmp_path, ending_models, server.base_url,
                     output={"base_uri": s3_base, "storage": storage.model_dump()})
    claim = Storage.create_exclusive

    def claim_then_lose_the_server(self, relative, data):
        created = claim(self, relative, data)
        if "/.claims/" in relative:
            moto_s3.stop()  # the version number is ours; the copies that follow hit a dead server
        return created

    monkeypatch.setattr(Storage, "create_exclusive", claim_then_lose_the_server)
    with pytest.raises(StorageError, match="could not"):
        _build(config)
    monkeypatch.undo()
    moto_s3.restart()

    assert list_versions(s3_base, config.dataset, storage=storage) == []
    (build_dir,) = (tmp_path / "work").iterdir()
    assert build_status(Catalog(config.catalog_path), build_dir.name) == "failed"
    result = _build(config)
    # v1 was claimed by the failed publish and stays taken until gc: the retry publishes v2.
    assert result.version in ("tiny@v1", "tiny@v2") and result.shards["ran"] == 0
    assert list_versions(s3_base, config.dataset, storage=storage) == [result.version_number]
    _assert_one_whole_version(config, result, storage)


def test_a_base_dir_that_refuses_writes_fails_clearly_and_a_rerun_publishes(tmp_path, ending_models, server):
    base = tmp_path / "datasets"
    base.mkdir()
    config = _config(tmp_path, ending_models, server.base_url)
    # We run as root, which ignores permission bits; an immutable folder refuses even root.
    if subprocess.run(["chattr", "+i", str(base)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        with pytest.raises(StorageError, match="Operation not permitted|Permission denied"):
            _build(config)
    finally:
        subprocess.run(["chattr", "-i", str(base)], check=True)
    assert list(base.iterdir()) == []
    _assert_one_whole_version(config, _build(config))


@contextmanager
def tiny_disk(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    ).returncode != 0:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        yield lambda new_size: subprocess.run(["mount", "-o", f"remount,size={new_size}", str(path)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_under_the_datasets_leaves_no_version_and_a_rerun_publishes(tmp_path, ending_models, server):
    with tiny_disk(tmp_path / "datasets", "16k") as grow:
        config = _config(tmp_path, ending_models, server.base_url)
        with pytest.raises(StorageError, match="No space left on device"):
            _build(config)
        assert not list((tmp_path / "datasets" / "tiny").glob("v*"))
        assert not list((tmp_path / "datasets" / "tiny" / ".staging").glob("*")), "the staged files were removed"
        grow("16m")
        _assert_one_whole_version(config, _build(config))


def test_a_full_work_dir_mid_generation_fails_the_build_and_a_rerun_completes_it(tmp_path, ending_models, server):
    with tiny_disk(tmp_path / "work", "12k") as grow:
        config = _config(tmp_path, ending_models, server.base_url)
        with pytest.raises(OSError, match="No space left on device"):
            _build(config)
        calls_before = len(server.calls)
        assert 0 < calls_before < PROMPTS * 22
        assert not list((tmp_path / "work").rglob("*.tmp")), "no half-written temp file keeps the disk full"
        grow("16m")
        result = _build(config)
    _assert_one_whole_version(config, result)
    assert result.resumed

"""`VersionStore`: what a build asks of the published datasets, on a local folder and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tessy_core.builder.config import OutputConfig
from tessy_core.publish import DatasetNotFoundError, VersionExistsError
from tessy_core.publish.store import (
    HfParquetStore,
    VersionStore,
    register_store,
    version_store,
)
from tests.publish.conftest import MotoS3, build_info, sample_rows


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path: Path) -> OutputConfig:
    if request.param == "local":
        return OutputConfig(base_uri=str(tmp_path / "datasets"), max_rows_per_file=4)
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    return OutputConfig(
        base_uri=request.getfixturevalue("s3_base"), storage=moto.storage_config(), max_rows_per_file=4
    )


def test_a_build_finds_the_version_it_published(output: OutputConfig) -> None:
    store = version_store(output)
    assert isinstance(store, HfParquetStore)
    assert store.list_versions("toy") == []
    assert store.find_build("toy", "b1") is None

    first = store.publish("toy", {"train": sample_rows(10)}, build_info("b1"))
    second = store.publish("toy", {"train": sample_rows(3, prefix="t")}, build_info("b2"))

    assert (first.manifest.version, second.manifest.version) == (1, 2)
    assert store.list_versions("toy") == [1, 2]
    assert second.manifest.parent_version == 1
    # the output config's rows per file reach the layout: 10 rows, 4 per file
    assert len(first.manifest.splits["train"].files) == 3

    found = store.find_build("toy", "b1")
    assert found is not None
    assert found.manifest == first.manifest
    assert found.uri == first.uri
    assert store.find_build("toy", "b3") is None


def test_manifests_read_back_latest_or_numbered(output: OutputConfig) -> None:
    store = version_store(output)
    store.publish("toy", {"train": sample_rows(2)}, build_info("b1"))
    store.publish("toy", {"train": sample_rows(5, prefix="t")}, build_info("b2"))
    assert store.read_manifest("toy").version == 2
    assert store.read_manifest("toy", 1).row_counts == {"train": 2}
    with pytest.raises(DatasetNotFoundError):
        store.read_manifest("toy", 3)
    with pytest.raises(DatasetNotFoundError):
        store.read_manifest("other")


def test_a_taken_version_is_refused(tmp_path: Path) -> None:
    store = version_store(OutputConfig(base_uri=str(tmp_path)))
    store.publish("toy", {"train": sample_rows(2)}, build_info("b1"))
    with pytest.raises(VersionExistsError):
        store.publish("toy", {"train": sample_rows(2)}, build_info("b2"), version=1)
    assert store.list_versions("toy") == [1]


class _InMemoryStore(VersionStore):
    """A second format: what adding a table format takes (one class, one registration)."""

    def __init__(self, output) -> None:
        self.uri = output.base_uri
        self.published: dict[str, list] = {}

    @property
    def base_uri(self) -> str:
        return self.uri

    def list_versions(self, name):
        return [version.manifest.version for version in self.published.get(name, [])]

    def read_manifest(self, name, version=None):
        versions = self.published.get(name) or []
        if not versions:
            raise DatasetNotFoundError(name)
        return versions[(version or len(versions)) - 1].manifest

    def publish(self, name, splits, build, version=None):
        reference = HfParquetStore(self.uri).publish(name, splits, build, version)
        self.published.setdefault(name, []).append(reference)
        return reference


def test_a_new_format_is_one_class_and_one_registration(scoped_registries, tmp_path: Path) -> None:
    register_store("in-memory", _InMemoryStore)
    with pytest.raises(ValueError, match="already registered"):
        register_store("in-memory", _InMemoryStore)

    output = SimpleNamespace(format="in-memory", base_uri=str(tmp_path))
    store = version_store(output)
    assert isinstance(store, _InMemoryStore)
    store.publish("toy", {"train": sample_rows(2)}, build_info("b1"))
    assert store.find_build("toy", "b1").manifest.version == 1  # the interface's own scan

    with pytest.raises(ValueError, match="unknown dataset format 'lakehouse'.*hf-parquet, in-memory"):
        version_store(SimpleNamespace(format="lakehouse", base_uri=str(tmp_path)))

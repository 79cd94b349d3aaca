"""Publishing to a local folder: layout, manifest, reading back, immutability, failures, gc."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import yaml

from tessy_core.publish import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    InvalidNameError,
    InvalidSplitError,
    PublishConfig,
    Publisher,
    VersionExistsError,
    collect_garbage,
    list_datasets,
    list_versions,
    read_manifest,
    scan,
    verify,
)
from tessy_core.publish.storage import Storage
from tests.publish.conftest import build_info, sample_rows


@pytest.fixture
def base(tmp_path: Path) -> str:
    return str(tmp_path / "datasets")


def publish_two_versions(base: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    publisher = Publisher(base, config=PublishConfig(max_rows_per_file=4))
    first = sample_rows(10)
    rejected = sample_rows(3, prefix="r", accepted=False)
    publisher.publish("toy", {"train": first, "rejected": rejected}, build_info("b1"))
    second = sample_rows(5, prefix="t")
    publisher.publish("toy", {"train": second}, build_info("b2"))
    return first, second


def test_two_versions_read_back_with_nested_types(base: str) -> None:
    first, second = publish_two_versions(base)

    assert list_datasets(base) == ["toy"]
    assert list_versions(base, "toy") == [1, 2]
    assert scan(base, "toy@v1").collect().equals(first)
    assert scan(base, "toy").collect().equals(second)  # latest
    assert scan(base, "toy@v1", split="rejected").collect()["reason"].to_list() == ["wrong answer"] * 3
    assert scan(base, "toy@v1").collect_schema() == first.schema


def test_manifest_records_the_build(base: str) -> None:
    first, _ = publish_two_versions(base)
    v1 = read_manifest(base, "toy", 1)
    v2 = read_manifest(base, "toy")

    assert (v1.version, v1.parent_version, v2.version, v2.parent_version) == (1, None, 2, 1)
    assert v1.row_counts == {"train": 10, "rejected": 3}
    assert [file.path for file in v1.splits["train"].files] == [
        "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet",
    ]
    assert [file.rows for file in v1.splits["train"].files] == [4, 4, 2]
    assert v1.splits["train"].columns == {name: str(dtype) for name, dtype in first.schema.items()}
    assert "reason" in v1.splits["rejected"].columns
    assert v1.build_id == "b1" and v2.build_id == "b2"
    assert v1.models["teacher"]["name"] == "tiny-teacher"
    assert v1.validation == {"suite": "basic", "success": True}
    assert v1.code.package == "tessy" and v1.code.version
    assert v1.created_at.tzinfo is not None


def test_checksums_verify_and_detect_tampering(base: str) -> None:
    publish_two_versions(base)
    manifest = verify(base, "toy@v1")
    assert len(manifest.files) == 4

    shard = Path(base) / "toy" / "v1" / manifest.files[0].path
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ChecksumMismatchError, match="train-00000-of-00003"):
        verify(base, "toy@v1")


def test_card_front_matter_names_configs_and_figures(base: str) -> None:
    publish_two_versions(base)
    card = (Path(base) / "toy" / "v1" / "README.md").read_text()
    front_matter = yaml.safe_load(card.split("---")[1])

    # train and rejected differ in columns, so they cannot share one Hugging Face config.
    assert front_matter["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]},
        {"config_name": "rejected", "data_files": [{"split": "rejected", "path": "data/rejected-*.parquet"}]},
    ]
    assert "| train | 10 | 3 |" in card
    assert "teacher_token_share" in card and "tiny-student" in card


def test_same_schema_splits_share_the_default_config(base: str) -> None:
    Publisher(base).publish(
        "toy", {"train": sample_rows(3), "test": sample_rows(2, prefix="x")}, build_info()
    )
    card = (Path(base) / "toy" / "v1" / "README.md").read_text()
    configs = yaml.safe_load(card.split("---")[1])["configs"]
    assert configs == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*.parquet"},
                {"split": "test", "path": "data/test-*.parquet"},
            ],
        }
    ]


def test_hugging_face_loaders_read_the_layout(base: str, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    first, _ = publish_two_versions(base)
    version = Path(base) / "toy" / "v1"
    cache = str(tmp_path / "hf-cache")

    by_files = datasets.load_dataset(
        "parquet", data_files={"train": str(version / "data" / "train-*.parquet")}, cache_dir=cache
    )
    assert by_files["train"].num_rows == 10
    assert by_files["train"][0]["messages"] == first["messages"][0].to_list()

    by_card = datasets.load_dataset(str(version), cache_dir=cache)
    assert list(by_card) == ["train"]
    assert by_card["train"]["sample_id"] == first["sample_id"].to_list()
    rejected = datasets.load_dataset(str(version), "rejected", cache_dir=cache)
    assert rejected["rejected"]["reason"] == ["wrong answer"] * 3


def test_versions_are_immutable(base: str) -> None:
    publisher = Publisher(base)
    publisher.publish("toy", {"train": sample_rows(2)}, build_info("b1"))
    before = (Path(base) / "toy" / "v1" / "manifest.json").read_bytes()

    with pytest.raises(VersionExistsError, match="toy@v1 already exists"):
        publisher.publish("toy", {"train": sample_rows(3)}, build_info("b2"), version=1)

    assert (Path(base) / "toy" / "v1" / "manifest.json").read_bytes() == before
    assert publisher.publish("toy", {"train": sample_rows(3)}, build_info("b2"), version=5).manifest.version == 5
    assert list_versions(base, "toy") == [1, 5]
    assert read_manifest(base, "toy", 5).parent_version == 1


def test_injected_failure_between_writes_leaves_nothing_visible(base: str, monkeypatch) -> None:
    original = Storage.write_bytes
    calls = {"count": 0}

    def fail_on_third_write(self: Storage, relative: str, data: bytes) -> None:
        calls["count"] += 1
        if calls["count"] == 3:
            raise OSError("disk full (injected)")
        original(self, relative, data)

    monkeypatch.setattr(Storage, "write_bytes", fail_on_third_write)
    publisher = Publisher(base, config=PublishConfig(max_rows_per_file=2))
    with pytest.raises(Exception, match="disk full"):
        publisher.publish("toy", {"train": sample_rows(8)}, build_info())

    assert calls["count"] == 3
    assert list_versions(base, "toy") == [] and list_datasets(base) == []
    assert not (Path(base) / "toy" / "v1").exists()
    assert list((Path(base) / "toy" / ".staging").iterdir()) == []  # cleaned on the way out

    monkeypatch.setattr(Storage, "write_bytes", original)
    assert publisher.publish("toy", {"train": sample_rows(8)}, build_info()).manifest.version == 1
    assert scan(base, "toy@v1").collect().height == 8


def test_gc_removes_only_old_staging(base: str, monkeypatch) -> None:
    original = Storage.write_bytes

    def crash_on_second_shard(self: Storage, relative: str, data: bytes) -> None:
        if "00001-of" in relative:
            raise OSError("crash (injected)")
        original(self, relative, data)

    def cannot_clean(self: Storage, relative: str) -> None:
        raise OSError("cleanup impossible (injected)")

    Publisher(base).publish("toy", {"train": sample_rows(2)}, build_info("ok"))
    with monkeypatch.context() as patch:
        patch.setattr(Storage, "write_bytes", crash_on_second_shard)
        patch.setattr(Storage, "remove_tree", cannot_clean)
        with pytest.raises(OSError, match="crash"):
            Publisher(base, config=PublishConfig(max_rows_per_file=1)).publish(
                "toy", {"train": sample_rows(2)}, build_info("crashed")
            )
    staging = Path(base) / "toy" / ".staging"
    assert len(list(staging.iterdir())) == 1

    assert collect_garbage(base, older_than_hours=1) == []  # too young: may be a live publisher
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    removed = collect_garbage(base, older_than_hours=1, now=later)

    assert len(removed) == 1 and "crashed" in removed[0]
    assert list(staging.iterdir()) == []
    assert list_versions(base, "toy") == [1]


def test_bad_input_is_refused_before_writing(base: str) -> None:
    publisher = Publisher(base)
    rows = sample_rows(3)
    with pytest.raises(InvalidNameError):
        publisher.publish("../escape", {"train": rows}, build_info())
    with pytest.raises(InvalidNameError):
        publisher.publish("toy", {"train-all": rows}, build_info())
    with pytest.raises(InvalidSplitError, match="prompt_id"):
        publisher.publish("toy", {"train": rows.drop("prompt_id")}, build_info())
    with pytest.raises(InvalidSplitError, match="duplicates: 's0000' in train"):
        publisher.publish("toy", {"train": pl.concat([rows, rows.head(1)])}, build_info())
    with pytest.raises(InvalidSplitError, match="'s0001' in rejected"):
        publisher.publish("toy", {"train": rows, "rejected": rows.slice(1, 1)}, build_info())
    with pytest.raises(InvalidSplitError, match="messages"):
        publisher.publish("toy", {"train": rows.with_columns(messages=pl.lit("text"))}, build_info())
    assert not Path(base).exists() or list_datasets(base) == []


def test_empty_split_keeps_its_schema(base: str) -> None:
    rows = sample_rows(3)
    Publisher(base).publish("toy", {"train": rows, "rejected": rows.clear().with_columns()}, build_info())
    manifest = read_manifest(base, "toy")
    assert manifest.row_counts == {"train": 3, "rejected": 0}
    assert len(manifest.splits["rejected"].files) == 1
    assert scan(base, "toy", split="rejected").collect_schema() == rows.schema


def test_missing_things_raise_not_found(base: str) -> None:
    with pytest.raises(DatasetNotFoundError, match="no published version of 'toy'"):
        read_manifest(base, "toy")
    Publisher(base).publish("toy", {"train": sample_rows(1)}, build_info())
    with pytest.raises(DatasetNotFoundError, match="versions: v1"):
        scan(base, "toy@v3")
    with pytest.raises(DatasetNotFoundError, match="no split 'rejected'"):
        scan(base, "toy@v1", split="rejected")
    assert json.loads((Path(base) / "toy" / "v1" / "manifest.json").read_text())["name"] == "toy"

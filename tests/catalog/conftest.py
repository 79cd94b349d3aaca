from __future__ import annotations

from pathlib import Path

import pytest

from tessy_core.catalog import Catalog, CatalogConfig


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "catalog.duckdb", CatalogConfig(lock_timeout_s=30))

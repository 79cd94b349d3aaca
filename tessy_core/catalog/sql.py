"""Loads the catalog's DDL and queries from the repository's `sql/` folder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# tessy_core/catalog/sql.py -> repository root. The package is installed editable, so the root's
# `sql/` folder sits next to `tessy_core/`.
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class SqlFileMissing(FileNotFoundError):
    pass


@cache
def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql`, e.g. `sql_text("schema")` or `sql_text("queries/insert_prompts")`."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise SqlFileMissing(
            f"catalog SQL file {path} not found; the catalog reads its queries from the repository's "
            "sql/ folder, so install tessy editable from a checkout (uv pip install -e .)"
        )
    return path.read_text(encoding="utf-8")


def query(name: str) -> str:
    """The text of `sql/queries/<name>.sql`."""
    return sql_text(f"queries/{name}")

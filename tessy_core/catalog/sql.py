"""Loads the catalog's DDL and queries, shipped with the package.

The SQL lives in the repository's top-level `sql/` folder; `tessy_core/sql` links to it, and the
wheel carries the files, so an editable checkout and a plain `pip install` read the same text
through `importlib.resources`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


class SqlFileMissing(FileNotFoundError):
    pass


@cache
def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql`, e.g. `sql_text("schema")` or `sql_text("queries/insert_prompts")`."""
    resource = files("tessy_core").joinpath("sql", *f"{name}.sql".split("/"))
    if not resource.is_file():
        raise SqlFileMissing(
            f"catalog SQL file sql/{name}.sql is not in the installed tessy_core package ({resource}); "
            "reinstall tessy (the wheel ships sql/ inside tessy_core)"
        )
    return resource.read_text(encoding="utf-8")


def query(name: str) -> str:
    """The text of `sql/queries/<name>.sql`."""
    return sql_text(f"queries/{name}")

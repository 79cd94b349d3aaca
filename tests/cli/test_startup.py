"""`tessy` answers at once: starting the CLI, and the read-only commands, load no heavy library.

Time is measured by `tessy bench cli` (figures, not a timed test); these tests pin the cause of a
slow start, which is a heavy import on the way to a command that does not need it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Libraries that take from a few tenths of a second (duckdb, polars) to many seconds (torch) to import.
HEAVY = (
    "torch", "transformers", "prefect", "polars", "pandas", "pyarrow", "duckdb", "great_expectations",
    "numpy", "openlineage", "s3fs", "fsspec", "httpx", "trl", "datasets", "ray", "pydantic", "yaml",
)


def _loaded_heavy_modules(code: str) -> list[str]:
    probe = textwrap.dedent(f"""
        import json, sys
        try:
{textwrap.indent(textwrap.dedent(code), " " * 12)}
        except SystemExit:
            pass
        heavy = {HEAVY!r}
        print(json.dumps(sorted(name for name in heavy if name in sys.modules)), file=sys.__stderr__)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    return json.loads(last)


def test_starting_the_cli_loads_no_heavy_library():
    assert _loaded_heavy_modules("import tessy_core.cli") == []


def test_help_loads_no_heavy_library():
    assert _loaded_heavy_modules("""
        sys.argv = ["tessy", "--help"]
        from tessy_core.cli import app
        app()
    """) == []


def test_listing_datasets_loads_only_what_reading_a_manifest_needs(tmp_path):
    loaded = _loaded_heavy_modules(f"""
        sys.argv = ["tessy", "datasets", "list", "--base", {str(tmp_path)!r}, "--json"]
        from tessy_core.cli import app
        app()
    """)
    assert set(loaded) <= {"fsspec", "pydantic", "yaml"}, loaded

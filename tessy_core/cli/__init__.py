"""The `tessy` command. Each area of the library registers one sub-command group here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tessy",
    help="Build student-consistent SFT datasets with TESSY (teacher + student interleaved traces).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """Build student-consistent SFT datasets with TESSY (teacher + student interleaved traces)."""


# Sub-command groups, one module per area (each defines `app` or a command function).
# Keep this list sorted; add one line per module.
from tessy_core.cli import _register  # noqa: E402

_register.register_all(app)

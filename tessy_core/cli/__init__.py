"""The `tessy` command. Each area of the library registers one sub-command group here."""

from __future__ import annotations

import os

import typer

# Embedded defaults for local runs (a user's own settings win): no telemetry from the library stack
# (it also logs errors offline), and time for Prefect's temporary server to start on a busy machine.
for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "VLLM_NO_USAGE_STATS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(_name, _value)

app = typer.Typer(
    name="tessy",
    help="Build student-consistent SFT datasets with TESSY (teacher + student interleaved traces).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="also show the libraries' own progress bars (model loading, saving)"
    ),
) -> None:
    """Build student-consistent SFT datasets with TESSY (teacher + student interleaved traces)."""
    # One progress display per stage, tessy's own: transformers' and huggingface_hub's bars
    # ("Loading weights", "Writing model shards") follow this flag, read when they are first imported.
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


# Sub-command groups, one module per area (each defines `app` or a command function).
# Keep this list sorted; add one line per module.
from tessy_core.cli import _register  # noqa: E402

_register.register_all(app)

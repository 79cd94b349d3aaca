"""Attaches each area's commands to the root `tessy` app."""

from __future__ import annotations

import importlib

import typer

# module name under tessy_core.cli -> how it is attached:
#   "group:NAME" adds the module's `app` as `tessy NAME ...`
#   "commands"   adds every function in the module's `COMMANDS` list as a top-level command
#   both, comma-separated ("group:NAME,commands"): a group plus top-level commands
SUBCOMMANDS: dict[str, str] = {
    "build": "commands",
    "bench": "group:bench",
    "catalog": "group:catalog",
    "datasets": "group:datasets,commands",
    "demo": "commands",
    "evaluate": "group:evaluate",
    "generate": "commands",
    "predictor": "group:predictor",
    "preflight": "commands",
    "sandbox": "group:sandbox",
    "toyworld": "group:toyworld",
    "workers": "group:workers",
}


def register_all(root: typer.Typer) -> None:
    for module_name, attachments in SUBCOMMANDS.items():
        module = importlib.import_module(f"tessy_core.cli.{module_name}")
        for how in attachments.split(","):
            if how.startswith("group:"):
                root.add_typer(module.app, name=how.split(":", 1)[1])
            else:
                for command in module.COMMANDS:
                    root.command()(command)

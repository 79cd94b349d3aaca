"""The dataset card (`README.md`): YAML front matter Hugging Face loaders read, then the build's figures."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tessy_core.publish.manifest import Manifest
from tessy_core.publish.naming import split_file_pattern, version_dir

DEFAULT_CONFIG = "default"


def render_card(manifest: Manifest, evaluations_markdown: str = "") -> str:
    """The card; `evaluations_markdown` is the SFT evaluation section (tessy_core.evaluation.report)."""
    front_matter = {"configs": hf_configs(manifest), "tags": ["tessy", "sft", "reasoning"]}
    sections = [
        f"---\n{yaml.safe_dump(front_matter, sort_keys=False)}---",
        f"# {manifest.name} {version_dir(manifest.version)}",
        manifest.description or "Student-consistent SFT data built with TESSY.",
        _summary_table(manifest),
        _splits_table(manifest),
        _json_section("Models", manifest.models),
        _json_section("Boundary predictors", manifest.predictors),
        _json_section("Figures", manifest.figures),
        _json_section("Validation", manifest.validation),
        evaluations_markdown.strip(),
        _usage(manifest),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def hf_configs(manifest: Manifest) -> list[dict[str, Any]]:
    """Hugging Face configs: one per distinct split schema, since a config's splits must share
    their features. The config holding `train` (else the first split) is `default`; any other is
    named after its first split, so `load_dataset(path, "rejected")` reads the rejected rows."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for split, entry in manifest.splits.items():
        groups.setdefault(tuple(entry.columns.items()), []).append(split)
    ordered = sorted(groups.values(), key=lambda splits: "train" not in splits)
    configs = []
    for index, splits in enumerate(ordered):
        name = DEFAULT_CONFIG if index == 0 else splits[0]
        if index and name == DEFAULT_CONFIG:
            name = f"{DEFAULT_CONFIG}_{index}"
        data_files = [{"split": split, "path": split_file_pattern(split)} for split in splits]
        configs.append({"config_name": name, "data_files": data_files})
    return configs


def _summary_table(manifest: Manifest) -> str:
    parent = version_dir(manifest.parent_version) if manifest.parent_version else "none"
    commit = manifest.code.git_commit or "unknown"
    rows = [
        ("build id", manifest.build_id),
        ("created at", manifest.created_at.isoformat()),
        ("parent version", parent),
        ("code", f"{manifest.code.package} {manifest.code.version} (commit {commit})"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {label} | {value} |" for label, value in rows)


def _splits_table(manifest: Manifest) -> str:
    lines = ["## Splits", "", "| split | rows | files | bytes |", "|---|---:|---:|---:|"]
    for split, entry in manifest.splits.items():
        lines.append(f"| {split} | {entry.rows} | {len(entry.files)} | {sum(f.bytes for f in entry.files)} |")
    return "\n".join(lines)


def _json_section(title: str, content: dict[str, Any]) -> str:
    if not content:
        return ""
    return f"## {title}\n\n```json\n{json.dumps(content, indent=2, sort_keys=True, default=str)}\n```"


def _usage(manifest: Manifest) -> str:
    return (
        "## Use\n\n"
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("path/to/{manifest.name}/{version_dir(manifest.version)}")\n```\n\n'
        "Export for TRL: "
        f"`tessy export {manifest.name}@{version_dir(manifest.version)} --format messages --out train.jsonl`. "
        "`manifest.json` holds the schema, sha256 checksums and the full build configuration."
    )

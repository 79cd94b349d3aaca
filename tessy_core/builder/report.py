"""What a build shows people: tables and a markdown report (with a chart) made from a `BuildResult`.

Plain data and text, so the flow can publish them as Prefect artifacts and tests can check them
without Prefect.
"""

from __future__ import annotations

from typing import Any

from tessy_core.builder.pipeline import BuildResult

OUTCOMES = ("published", "rejected", "failed", "pending")
BAR_WIDTH = 30


def outcome_rows(result: BuildResult) -> list[dict[str, Any]]:
    total = sum(result.counts.get(o, 0) for o in OUTCOMES) or 1
    rows = []
    for outcome in OUTCOMES:
        samples = result.counts.get(outcome, 0)
        reasons = result.reasons.get(outcome, {})
        rows.append(
            {
                "outcome": outcome,
                "samples": samples,
                "share": f"{samples / total:.1%}",
                "top reasons": "; ".join(f"{r} ({n})" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]),
            }
        )
    return rows


def usage_rows(result: BuildResult) -> list[dict[str, Any]]:
    rows = []
    for role, usage in result.usage.items():
        generated = usage.get("tokens_generated", 0)
        rows.append(
            {
                "model": role,
                "requests": usage.get("requests", 0),
                "tokens generated": generated,
                "tokens kept": usage.get("tokens_kept", 0),
                "tokens thrown away": usage.get("tokens_discarded", 0),
                "kept share": f"{usage.get('tokens_kept', 0) / generated:.1%}" if generated else "-",
            }
        )
    return rows


def figure_rows(result: BuildResult) -> list[dict[str, Any]]:
    rows = []
    for name, value in result.figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        rows.append({"figure": name, "value": "-" if value is None else str(value)})
    return rows


def bar_chart(values: dict[str, int], width: int = BAR_WIDTH) -> str:
    """A text bar chart (renders anywhere markdown does, no images or scripts)."""
    if not values:
        return ""
    peak = max(values.values()) or 1
    label_width = max(len(label) for label in values)
    lines = []
    for label, value in values.items():
        bar = "█" * round(width * value / peak) if value else ""
        lines.append(f"{label.ljust(label_width)} │{bar} {value}")
    return "\n".join(lines)


def report_markdown(result: BuildResult) -> str:
    title = f"# Build of `{result.dataset}`"
    if result.status == "empty":
        return f"{title}\n\n{result.message}\n"
    lines = [
        title,
        "",
        f"**{result.status}**: {result.message}",
        "",
        f"- build id: `{result.build_id}`" + (" (resumed)" if result.resumed else ""),
        f"- version: `{result.version}` at `{result.uri}`" if result.version else "- version: none",
        f"- shards: {result.shards.get('total', 0)} "
        f"({result.shards.get('ran', 0)} run now, {result.shards.get('skipped', 0)} finished earlier)",
        "",
        "## Samples by outcome",
        "",
        "```text",
        bar_chart({o: result.counts.get(o, 0) for o in OUTCOMES}),
        "```",
    ]
    verdicts = result.figures.get("verdicts") or {}
    if verdicts:
        lines += ["", "## Verification verdicts of generated samples", "", "```text", bar_chart(verdicts), "```"]
    if result.usage:
        tokens = {
            f"{role} {kind}": usage.get(f"tokens_{kind}", 0)
            for role, usage in result.usage.items()
            for kind in ("kept", "discarded")
        }
        lines += ["", "## Tokens per model (kept vs thrown away past a boundary)", "", "```text", bar_chart(tokens), "```"]
    for kind in ("rejected", "failed"):
        reasons = result.reasons.get(kind)
        if reasons:
            lines += ["", f"## Why samples were {kind}", "", "| reason | samples |", "|---|---:|"]
            lines += [f"| {reason} | {n} |" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    summary = result.validation.get("summary_markdown")
    if summary:
        lines += ["", summary]
    return "\n".join(lines) + "\n"

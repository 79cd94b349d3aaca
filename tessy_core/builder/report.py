"""What a build shows people: tables, a markdown report with the headline first, and a trend across
the dataset's versions, made from a `BuildResult`.

Plain data and text, so the flow can publish them as Prefect artifacts and tests can check them
without Prefect. `trend_points` reads the catalog and the versions' manifests; everything else is
a pure function of its arguments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.builder.results import BuildResult

OUTCOMES = ("published", "rejected", "failed", "pending")
BAR_WIDTH = 30
TREND_VERSIONS = 10
STYLE_FIGURES = (
    ("student_nll_mean", "student NLL (mean, lower is more student-like)"),
    ("tfidf_similarity_mean", "similarity to the student's own answers (TF-IDF cosine)"),
    ("style_token_rate_mean", "style-token rate (student predictor)"),
)


# --- headline -----------------------------------------------------------------------------------


def status_label(result: BuildResult) -> str:
    """One word or two for the build's outcome, as the run name, the state and the report say it."""
    if result.status == "empty":
        return "nothing to build"
    if result.status == "blocked":
        return "BLOCKED"
    if result.validation and not result.validation.get("success", True):
        return "published with failures"
    return "published"


def failed_checks(result: BuildResult) -> list[dict[str, Any]]:
    return [c for c in result.validation.get("checks", []) if not c.get("success")]


def counts_line(result: BuildResult) -> str:
    """`16 published (40.0%), 0 rejected (0.0%), 24 failed (60.0%) of 40 samples`."""
    total = sum(result.counts.get(o, 0) for o in OUTCOMES)
    parts = [
        f"{result.counts.get(o, 0)} {o} ({_share(result.counts.get(o, 0), total)})"
        for o in OUTCOMES
        if o != "pending" or result.counts.get(o)
    ]
    return ", ".join(parts) + f" of {total} samples"


def checks_line(result: BuildResult) -> str:
    """`failed_share 60.0% failed (24/40) vs <= 25%; ...` for the checks that failed."""
    return "; ".join(
        f"{c['check']} {c.get('observed') or c.get('error') or '?'} vs {c.get('threshold') or '?'}"
        for c in failed_checks(result)
    )


def state_message(result: BuildResult) -> str:
    """The flow run's state message: what was built and how it went, with counts."""
    if result.status == "empty":
        return result.message
    head = f"{result.version or result.dataset}: {status_label(result)}; {counts_line(result)}"
    checks = checks_line(result)
    return f"{head}; failed checks: {checks}" if checks else head


def headline_rows(result: BuildResult) -> list[tuple[str, str]]:
    """(figure, value) pairs of the report's first table: what a data team looks at first."""
    figures = result.figures
    total = sum(result.counts.get(o, 0) for o in OUTCOMES)
    thresholds = {c["check"]: c.get("threshold") for c in result.validation.get("checks", [])}

    def against(check: str) -> str:
        return f"; check {thresholds[check]}" if thresholds.get(check) else ""

    rows = [
        (o, f"{result.counts.get(o, 0)} ({_share(result.counts.get(o, 0), total)}{against(f'{o}_share')})")
        for o in ("published", "rejected", "failed")
    ]
    accepted = (figures.get("verdicts") or {}).get("accepted", 0)
    rows += [
        ("pass rate on hidden tests, all samples", _rate(figures.get("pass_rate_all"), f"{accepted}/{total}")),
        ("pass rate, samples that finished generating",
         _rate(figures.get("pass_rate"), f"{accepted}/{figures.get('generated', 0)}{against('pass_rate')}")),
        ("pass rate, published samples", _rate(figures.get("pass_rate_published"))),
        ("teacher token share (mean, interleaved)",
         _number(figures.get("teacher_token_share_mean")) + (f" (each sample {thresholds['teacher_share_band']})"
                                                             if thresholds.get("teacher_share_band") else "")),
    ]
    style = figures.get("style")
    for key, label in STYLE_FIGURES:
        value = _number(style.get(key)) if style else "style gate off"
        rows.append((f"style: {label}", value))
    return rows


def cost_rows(result: BuildResult) -> list[dict[str, str]]:
    """Per model role, the cost per published sample: requests and generated tokens as the engine
    counted them, and prompt and completion tokens as the servers reported them (HTTP backends;
    '-' for in-process models). Without a published sample: the totals, marked as such."""
    published = result.counts.get("published", 0)
    rows = []
    for role, usage in result.usage.items():
        server = result.servers.get(role) or {}
        rows.append({
            "model": role,
            "requests": _per(usage.get("requests", 0), published),
            "tokens generated": _per(usage.get("tokens_generated", 0), published),
            "server prompt tokens": _per(server["prompt_tokens"], published) if server else "-",
            "server completion tokens": _per(server["completion_tokens"], published) if server else "-",
        })
    return rows


# --- tables (artifacts) -------------------------------------------------------------------------


def outcome_rows(result: BuildResult) -> list[dict[str, Any]]:
    total = sum(result.counts.get(o, 0) for o in OUTCOMES) or 1
    rows = []
    for outcome in OUTCOMES:
        samples = result.counts.get(outcome, 0)
        reasons = result.reasons.get(outcome, {})
        examples = result.examples.get(outcome, {})
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        rows.append(
            {
                "outcome": outcome,
                "samples": samples,
                "share": f"{samples / total:.1%}",
                "top reasons": "; ".join(f"{r} ({n})" for r, n in top),
                "first sample ids": "; ".join(", ".join(examples.get(r, [])[:3]) for r, _ in top),
            }
        )
    return rows


def usage_rows(result: BuildResult) -> list[dict[str, Any]]:
    published = result.counts.get("published", 0)
    rows = []
    for role, usage in result.usage.items():
        generated = usage.get("tokens_generated", 0)
        server = result.servers.get(role) or {}
        rows.append(
            {
                "model": role,
                "requests": usage.get("requests", 0),
                "tokens generated": generated,
                "tokens kept": usage.get("tokens_kept", 0),
                "tokens thrown away": usage.get("tokens_discarded", 0),
                "kept share": f"{usage.get('tokens_kept', 0) / generated:.1%}" if generated else "-",
                "requests per published sample": _per(usage.get("requests", 0), published) if published else "-",
                "tokens per published sample": _per(generated, published) if published else "-",
                "server prompt tokens": server.get("prompt_tokens", "-"),
                "server completion tokens": server.get("completion_tokens", "-"),
                "server errors / failovers": f"{server['errors']} / {server['failovers']}" if server else "-",
            }
        )
    return rows


FIGURE_LABELS = {
    "samples": "samples",
    "generated": "samples that finished generating",
    "published": "published samples",
    "pass_rate": "pass rate (finished generating)",
    "pass_rate_all": "pass rate (all samples)",
    "pass_rate_published": "pass rate (published)",
    "publish_rate": "publish rate",
    "failed_share": "failed share",
    "rejected_share": "rejected share",
    "verdicts": "verdicts of generated samples",
    "teacher_token_share_mean": "teacher token share (mean)",
    "thinking_chars_mean": "thinking length, chars (mean, published)",
    "answer_chars_mean": "answer length, chars (mean, published)",
    "attempts_mean": "attempts per sample (mean)",
    "style": "style gate",
}
RATES = {"pass_rate", "pass_rate_all", "pass_rate_published", "publish_rate", "failed_share", "rejected_share"}


def figure_rows(result: BuildResult) -> list[dict[str, Any]]:
    rows = []
    for name, value in result.figures.items():
        if name == "style" and isinstance(value, dict):
            for key, label in STYLE_FIGURES:
                rows.append({"figure": f"style: {label}", "value": _number(value.get(key))})
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif value is None:
            text = "off" if name == "style" else "-"
        elif name in RATES:
            text = _rate(value)
        else:
            text = _number(value)
        rows.append({"figure": FIGURE_LABELS.get(name, name.replace("_", " ")), "value": text})
    return rows


def validation_rows(result: BuildResult) -> list[dict[str, Any]]:
    return [
        {
            "check": c["check"],
            "verdict": "ok" if c.get("success") else "FAILED",
            "observed": c.get("observed") or (f"error: {c['error']}" if c.get("error") else "-"),
            "threshold": c.get("threshold") or "-",
        }
        for c in sorted(result.validation.get("checks", []), key=lambda c: bool(c.get("success")))
    ]


# --- the report ---------------------------------------------------------------------------------


def bar_chart(values: dict[str, float], width: int = BAR_WIDTH, scale: float | None = None,
              fmt: str = "{}") -> str:
    """A text bar chart (renders anywhere markdown does, no images or scripts). `scale`: the value
    a full bar stands for (default: the largest value)."""
    if not values:
        return ""
    peak = scale or max((v for v in values.values() if v is not None), default=0) or 1
    label_width = max(len(label) for label in values)
    lines = []
    for label, value in values.items():
        if value is None:
            lines.append(f"{label.ljust(label_width)} │ -")
            continue
        bar = "█" * round(width * min(value, peak) / peak) if value else ""
        lines.append(f"{label.ljust(label_width)} │{bar} {fmt.format(value)}")
    return "\n".join(lines)


def report_markdown(result: BuildResult, trend: list[dict[str, Any]] | None = None,
                    links: dict[str, str] | None = None) -> str:
    """The build report: headline (status, counts, pass rates, teacher share, style, cost) first,
    then validation (observed vs threshold), failures with sample ids, charts, trend, details.
    `links`: label -> URL shown under the headline (the version's card, its browser console)."""
    name = result.version or result.dataset
    if result.status == "empty":
        return f"# {name}: nothing to build\n\n{result.message}\n"
    label = status_label(result)
    lines = [f"# {name}: {label}", ""]
    if result.status == "blocked":
        lines += ["**Nothing was published.**", ""]
    checks = checks_line(result)
    if checks:
        lines += [f"**Failed checks:** {checks}", ""]
    lines += [counts_line(result) + ".", ""]
    for text, url in (links or {}).items():
        lines.append(f"- [{text}]({url})")
    if result.uri:
        lines.append(f"- version: `{_uri(result.uri)}`")
    if links or result.uri:
        lines.append("")
    lines += ["| headline | value |", "|---|---|"]
    lines += [f"| {figure} | {value} |" for figure, value in headline_rows(result)]
    costs = cost_rows(result)
    if costs:
        per = "per published sample" if result.counts.get("published") else "in all (nothing published)"
        lines += ["", f"Cost {per}:", "", "| model | requests | tokens generated | server prompt tokens | "
                  "server completion tokens |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {c['model']} | {c['requests']} | {c['tokens generated']} | {c['server prompt tokens']} | "
                  f"{c['server completion tokens']} |" for c in costs]

    rows = validation_rows(result)
    if rows:
        passed = sum(r["verdict"] == "ok" for r in rows)
        lines += ["", f"## Validation: {passed}/{len(rows)} checks met", "",
                  "| check | verdict | observed | threshold |", "|---|---|---|---|"]
        lines += [
            f"| {r['check']} | {'ok' if r['verdict'] == 'ok' else '**FAILED**'} | {_cell(r['observed'])} | "
            f"{_cell(r['threshold'])} |"
            for r in rows
        ]
    lines += _failures_section(result)
    lines += ["", "## Samples by outcome", "", "```text",
              bar_chart({o: result.counts.get(o, 0) for o in OUTCOMES}), "```"]
    verdicts = result.figures.get("verdicts") or {}
    if verdicts:
        lines += ["", "## Verification verdicts of generated samples", "", "```text", bar_chart(verdicts), "```"]
    if result.usage:
        tokens = {
            f"{role} {kind}": usage.get(f"tokens_{kind}", 0)
            for role, usage in result.usage.items()
            for kind in ("kept", "discarded")
        }
        lines += ["", "## Tokens per model (kept vs thrown away past a boundary)", "", "```text",
                  bar_chart(tokens), "```"]
    if trend:
        lines += ["", f"## Trend: the last {len(trend)} builds of `{result.dataset}`", "", trend_chart(trend)]
    lines += ["", "## Build", ""] + _details(result)
    return "\n".join(lines) + "\n"


def _failures_section(result: BuildResult) -> list[str]:
    lines: list[str] = []
    for kind in ("failed", "rejected"):
        reasons = result.reasons.get(kind)
        if not reasons:
            continue
        examples = result.examples.get(kind, {})
        ordered = sorted(reasons.items(), key=lambda kv: -kv[1])
        lines += ["", f"## Why samples were {kind}", "", "| reason | samples |", "|---|---:|"]
        lines += [f"| {_cell(reason)} | {n} |" for reason, n in ordered]
        # Ids below the table, not in it: table cells do not wrap in Prefect's UI.
        lines += ["", "First sample ids per reason:", ""]
        lines += [f"- {reason}: {', '.join(f'`{i}`' for i in examples.get(reason, [])) or '-'}"
                  for reason, _ in ordered]
    if lines and result.rejected_uri:
        lines += ["", f"Every sample not published, with its `rejection_reason`: `{result.rejected_uri}` "
                  "(Parquet; the catalog's build samples hold each outcome and reason too)."]
    return lines


def _details(result: BuildResult) -> list[str]:
    lines = [
        f"- build id: `{result.build_id}`" + (" (resumed)" if result.resumed else ""),
        f"- shards: {result.shards.get('total', 0)} ({result.shards.get('ran', 0)} run now, "
        f"{result.shards.get('skipped', 0)} finished earlier)",
    ]
    for key, value in result.identities.items():
        lines.append(f"- {key.replace('_', ' ')}: `{value}`")
    for role, server in result.servers.items():
        lines.append(
            f"- {role} server{'s' if len(server.get('endpoints', [])) != 1 else ''}: "
            + ", ".join(f"`{e}`" for e in server.get("endpoints", []))
            + f" serving `{server.get('model_id')}`: {server.get('requests', 0)} requests, "
            f"{server.get('errors', 0)} errors, {server.get('failovers', 0)} failovers"
        )
    return lines


# --- trend across versions ----------------------------------------------------------------------


class TrendPoint(BaseModel):
    """One build of the dataset in the trend: a published version, or this build when it was blocked."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="vN, or 'this build (blocked)'")
    created_at: datetime | None = None
    build_id: str | None = None
    samples: int | None = None
    published: int | None = None
    rejected: int | None = None
    failed: int | None = None
    publish_rate: float | None = None
    pass_rate: float | None = None
    pass_rate_all: float | None = None
    teacher_share: float | None = None
    student_nll: float | None = None
    similarity: float | None = None
    style_token_rate: float | None = None
    requests_per_sample: float | None = Field(None, description="all models' requests per published sample")
    tokens_per_sample: float | None = Field(None, description="all models' generated tokens per published sample")


TREND_COLUMNS = {
    "publish_rate": ("publish rate", 1.0, "{:.2f}"),
    "pass_rate_all": ("pass rate (all samples)", 1.0, "{:.2f}"),
    "pass_rate": ("pass rate (generated)", 1.0, "{:.2f}"),
    "teacher_share": ("teacher token share", 1.0, "{:.2f}"),
    "student_nll": ("student NLL", None, "{:.3f}"),
    "similarity": ("similarity to the student", 1.0, "{:.2f}"),
    "style_token_rate": ("style-token rate", 1.0, "{:.2f}"),
    "requests_per_sample": ("requests per published sample", None, "{:.1f}"),
    "tokens_per_sample": ("tokens per published sample", None, "{:.0f}"),
}


def point_from_figures(label: str, figures: dict[str, Any], counts: dict[str, int] | None = None,
                       created_at: datetime | None = None, build_id: str | None = None) -> TrendPoint:
    """A trend point from a version's figures (manifest or `BuildResult.figures`) and the catalog's
    per-outcome counts of its build (older manifests lack the failed/rejected figures)."""
    counts = counts or {}
    samples = sum(counts.get(o, 0) for o in OUTCOMES) or figures.get("samples")
    published = counts.get("published", figures.get("published"))
    usage = figures.get("usage") or {}
    style = figures.get("style") or {}
    requests = sum(u.get("requests", 0) for u in usage.values()) if usage else None
    tokens = sum(u.get("tokens_generated", 0) for u in usage.values()) if usage else None
    accepted = (figures.get("verdicts") or {}).get("accepted")
    return TrendPoint(
        label=label, created_at=created_at, build_id=build_id, samples=samples, published=published,
        rejected=counts.get("rejected"), failed=counts.get("failed"),
        publish_rate=round(published / samples, 4) if samples and published is not None else figures.get("publish_rate"),
        pass_rate=figures.get("pass_rate"),
        pass_rate_all=figures.get("pass_rate_all", round(accepted / samples, 4) if accepted is not None and samples else None),
        teacher_share=figures.get("teacher_token_share_mean"),
        student_nll=style.get("student_nll_mean"), similarity=style.get("tfidf_similarity_mean"),
        style_token_rate=style.get("style_token_rate_mean"),
        requests_per_sample=round(requests / published, 2) if requests is not None and published else None,
        tokens_per_sample=round(tokens / published, 1) if tokens is not None and published else None,
    )


def trend_points(config, result: BuildResult, limit: int = TREND_VERSIONS) -> list[TrendPoint]:
    """The dataset's last `limit` versions (from the catalog, figures from their manifests), oldest
    first, and this build at the end when it published nothing (so a blocked build shows in the trend)."""
    from tessy_core.builder.prepare import open_catalog
    from tessy_core.catalog import build_accounting, list_dataset_versions
    from tessy_core.publish.naming import parse_version_dir
    from tessy_core.publish.store import version_store

    catalog = open_catalog(config)
    store = version_store(config.output)
    points = []
    for version in list_dataset_versions(catalog, result.dataset)[-limit:]:
        number = parse_version_dir(version.version)
        try:
            figures = store.read_manifest(result.dataset, number).figures if number else {}
        except Exception:  # noqa: BLE001 - a version whose manifest is gone still has its counts
            figures = {}
        counts = {}
        if version.build_id:
            try:
                counts = build_accounting(catalog, version.build_id).model_dump(exclude={"build_id"})
            except Exception:  # noqa: BLE001 - published by a build the catalog no longer knows
                counts = {}
        label = f"{version.version} (this build)" if version.build_id == result.build_id else version.version
        points.append(point_from_figures(label, figures, counts, version.created_at, version.build_id))
    if result.status == "blocked":
        points = points[-(limit - 1):] if limit > 1 else []
        points.append(point_from_figures(f"this build ({status_label(result)})",
                                         {**result.figures, "usage": result.usage}, result.counts,
                                         build_id=result.build_id))
    return points


def trend_rows(points: list[TrendPoint]) -> list[dict[str, Any]]:
    rows = []
    for point in points:
        row: dict[str, Any] = {
            "version": point.label,
            "created": point.created_at.strftime("%Y-%m-%d %H:%M") if point.created_at else "-",
            "samples": _number(point.samples),
            "published / rejected / failed": f"{_number(point.published)} / {_number(point.rejected)} / "
                                             f"{_number(point.failed)}",
        }
        for key, (label, _, fmt) in TREND_COLUMNS.items():
            value = getattr(point, key)
            row[label] = fmt.format(value) if value is not None else "-"
        rows.append(row)
    return rows


def trend_chart(points: list[TrendPoint] | list[dict[str, Any]]) -> str:
    """Per figure, one bar per version: a regression shows as a short bar under long ones."""
    points = [p if isinstance(p, TrendPoint) else TrendPoint(**p) for p in points]
    blocks = []
    for key, (label, scale, fmt) in TREND_COLUMNS.items():
        values = {p.label: getattr(p, key) for p in points}
        if all(v is None for v in values.values()):
            continue
        blocks.append(f"{label}\n{bar_chart(values, scale=scale, fmt=fmt)}")
    if not blocks:
        return ""
    return "```text\n" + "\n\n".join(blocks) + "\n```"


def trend_markdown(dataset: str, points: list[TrendPoint]) -> str:
    if not points:
        return f"# Trend of `{dataset}`\n\nNo published version yet.\n"
    return (f"# Trend of `{dataset}`: the last {len(points)} builds\n\n"
            "Bars of rates are on a 0-1 scale; the others are scaled to their largest value.\n\n"
            f"{trend_chart(points)}\n")


# --- formatting ---------------------------------------------------------------------------------


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _rate(value: float | None, detail: str | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" ({detail})" if detail else "")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _per(amount: float, published: int) -> str:
    return f"{amount / published:,.1f}" if published else f"{amount:,}"


def _uri(uri: str) -> str:
    """A location people can paste: `s3://...` as is, a local folder as a `file://` URI."""
    from pathlib import Path

    if "://" in uri:
        return uri
    return Path(uri).resolve().as_uri()


def _cell(text: Any, limit: int = 160) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the version's card and links ---------------------------------------------------------------


def version_uri(result: BuildResult) -> str | None:
    """The version's location as a URI: `s3://...` or `file://...`; never a bare path."""
    return _uri(result.uri) if result.uri else None


def console_link(pattern: str | None, uri: str | None) -> str | None:
    """The user's console pattern (`OutputConfig.console_url`) filled in for the version at `uri`."""
    if not pattern or not uri:
        return None
    from urllib.parse import quote

    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        path = prefix
    else:
        from pathlib import Path

        bucket, path = "", str(Path(uri.removeprefix("file://")).resolve())
        prefix = path.lstrip("/")
    return pattern.format(bucket=bucket, prefix=quote(prefix, safe="/"), path=quote(path, safe="/"),
                          uri=quote(_uri(uri), safe=":/"))


def card_markdown(config, result: BuildResult) -> str:
    """The published version's dataset card (its README without the loaders' front matter), under
    where the version is and how to load it: what the version link opens in the Prefect UI."""
    from tessy_core.publish.card import render_card
    from tessy_core.publish.store import version_store

    uri = version_uri(result)
    manifest = version_store(config.output).read_manifest(result.dataset, result.version_number)
    card = render_card(manifest)
    if card.startswith("---\n"):
        card = card.split("---\n", 2)[-1].lstrip()
    files = f"{uri}/data/train-*.parquet"
    lines = [
        f"# {result.version}: dataset card",
        "",
        f"- version folder: `{uri}`",
        f"- manifest (schema, sha256 checksums, full build config): `{uri}/manifest.json`",
        f"- load: `datasets.load_dataset(\"parquet\", data_files=\"{files}\")`",
        f"- export for TRL: `tessy export {result.version} --format messages --out train.jsonl`",
    ]
    link = console_link(getattr(config.output, "console_url", None), result.uri)
    if link:
        lines.append(f"- browse: [{link}]({link})")
    return "\n".join(lines) + "\n\n" + card

"""How evaluations read: the dataset card's section, the Prefect artifacts' chart, the compare table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tessy_core.evaluation.records import EvaluationRecord

_BAR_WIDTH = 30


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(figures: dict[str, Any] | None, key: str, sub: str | None = None, digits: int = 3) -> str:
    if not figures:
        return "n/a"
    spread = figures[key][sub] if sub else figures[key]
    if spread.get("mean") is None:
        return "n/a"
    if len(spread.get("values") or []) > 1:
        return f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f}"
    return f"{spread['mean']:.{digits}f}"


def comparison_rows(records: Sequence[EvaluationRecord]) -> list[dict[str, Any]]:
    """One row per evaluated version: base vs fine-tuned (means over repeats, spread when repeated)."""
    rows = []
    for record in records:
        results = record.results or {}
        base, tuned, training = results.get("base"), results.get("tuned"), results.get("training") or {}
        pass_keys = sorted((tuned or {}).get("pass_at", {}), key=int)
        row: dict[str, Any] = {
            "version": record.ref,
            "rows": training.get("examples"),
            "problems": (tuned or {}).get("problems"),
            "repeats": len((tuned or {}).get("repeats", [])),
        }
        for k in pass_keys:
            row[f"pass@{k} base"] = _spread(base, "pass_at", k)
            row[f"pass@{k} tuned"] = _spread(tuned, "pass_at", k)
        row.update({
            "style NLL base": _spread(base, "style_nll"),
            "style NLL tuned": _spread(tuned, "style_nll"),
            "format ok base": _spread(base, "format_ok"),
            "format ok tuned": _spread(tuned, "format_ok"),
            "format errors tuned": sum((tuned or {}).get("format_errors", {}).values()),
            "evaluation": record.evaluation_id,
        })
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "_no evaluations_"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def card_section(records: Sequence[EvaluationRecord]) -> str:
    """The dataset card's `SFT evaluations` section: every succeeded evaluation of the version."""
    if not records:
        return ""
    lines = [
        "## SFT evaluations",
        "",
        "The student fine-tuned on this version (TRL SFTTrainer, loss on the assistant turn) against the base "
        "student, on held-out problems none of which this version was built from. pass@k on the hidden tests "
        "(tessy's sandbox); style NLL: the mean per-token NLL of the model's own thinking under the base "
        "student (lower reads more like the student); format ok: the share of outputs in the student's format.",
        "",
        "| evaluation | finished | base | problems x samples x repeats | pass@1 base | pass@1 tuned | "
        "style NLL base | style NLL tuned | format ok base | format ok tuned | train steps | config | code |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        results = record.results or {}
        base, tuned, training = results.get("base") or {}, results.get("tuned") or {}, results.get("training") or {}
        sampling = record.config.get("sampling", {})
        shape = f"{len(record.eval_prompt_ids)} x {sampling.get('samples_per_problem', 1)} x {sampling.get('repeats', 1)}"
        finished = record.finished_at.isoformat(timespec="seconds") if record.finished_at else ""
        commit = (record.code.get("git_commit") or "unknown")[:12]
        lines.append(
            f"| {record.evaluation_id} | {finished} | {record.base_model} | {shape} | "
            f"{_spread(base, 'pass_at', '1')} | {_spread(tuned, 'pass_at', '1')} | {_spread(base, 'style_nll')} | "
            f"{_spread(tuned, 'style_nll')} | {_spread(base, 'format_ok')} | {_spread(tuned, 'format_ok')} | "
            f"{training.get('steps', 'n/a')} | {record.config_hash} | {commit} |"
        )
    return "\n".join(lines)


def _bar(value: float | None, scale: float) -> str:
    if value is None or scale <= 0:
        return ""
    return "█" * max(0, round(_BAR_WIDTH * value / scale))


def chart_markdown(record: EvaluationRecord) -> str:
    """A bar chart of base vs fine-tuned (Prefect renders artifacts as markdown)."""
    results = record.results or {}
    base, tuned = results.get("base") or {}, results.get("tuned") or {}
    lines = [f"# SFT evaluation of {record.ref}", "", f"Base `{record.base_model}`, "
             f"{len(record.eval_prompt_ids)} held-out problems, evaluation `{record.evaluation_id}`.", ""]
    for title, key, sub, scale in (
        ("pass@1 (hidden tests)", "pass_at", "1", 1.0),
        ("format ok (share of outputs in the student's format)", "format_ok", None, 1.0),
        ("style NLL under the base student (lower: more student-like)", "style_nll", None, None),
    ):
        def mean(figures: dict[str, Any]) -> float | None:
            if not figures:
                return None
            spread = figures[key][sub] if sub else figures[key]
            return spread.get("mean")

        values = {"base": mean(base), "tuned": mean(tuned)}
        top = scale or max([v for v in values.values() if v is not None] or [1.0])
        lines += [f"## {title}", "", "```"]
        for label, value in values.items():
            lines.append(f"{label:6s} {_bar(value, top):{_BAR_WIDTH}s} {_fmt(value)}")
        lines += ["```", ""]
    return "\n".join(lines)

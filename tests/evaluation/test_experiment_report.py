"""The small-world experiment's findings are read off its table, whichever way it comes out."""

from __future__ import annotations

from tessy_core.evaluation.experiment import ExperimentReport, ExperimentRow, findings, table_markdown


def _row(model: str, pass_at_1: float, std: float, nll: float) -> ExperimentRow:
    return ExperimentRow(model=model, version=None if model == "base student" else f"{model}@v1", rows=8,
                         pass_at_1=pass_at_1, pass_at_1_std=std, style_nll=nll, style_nll_std=0.01, format_ok=1.0,
                         format_errors={})


def test_findings_say_when_teacher_only_data_does_not_hurt():
    rows = [_row("base student", 0.40, 0.02, 0.30), _row("tuned on student_only", 0.38, 0.02, 0.28),
            _row("tuned on teacher_only", 0.70, 0.03, 0.90), _row("tuned on tessy", 0.72, 0.02, 0.35)]
    found = findings(rows)
    assert any("did NOT hurt" in line and "0.400 -> 0.700" in line for line in found)
    assert any("away from its own style" in line and "0.300 -> 0.900" in line for line in found)
    assert any("above teacher-only" in line and "within the spread" in line for line in found)


def test_findings_say_when_it_does():
    rows = [_row("base student", 0.40, 0.02, 0.30), _row("tuned on teacher_only", 0.20, 0.02, 0.90),
            _row("tuned on tessy", 0.60, 0.02, 0.35)]
    found = findings(rows)
    assert any(line.startswith("teacher-only data hurt the student: pass@1 0.400 -> 0.200") for line in found)
    assert any("beyond the spread" in line for line in found)
    assert any(line.startswith("tessy data raised the student's pass@1: 0.400 -> 0.600, beyond") for line in found)
    report = ExperimentReport(config={}, world="w", train_prompts=8, eval_problems=4, repeats=2, rows=rows,
                              evaluations={}, findings=found, wall_s=1.0)
    table = table_markdown(report)
    assert "| tuned on teacher_only | tuned on teacher_only@v1 | 8 |" in table and "0.200 ± 0.020" in table


def test_findings_call_a_drop_within_the_spread_no_clear_loss():
    rows = [_row("base student", 0.403, 0.005, 0.14), _row("tuned on teacher_only", 0.336, 0.077, 1.98)]
    (pass_finding, _) = findings(rows)
    assert pass_finding == ("teacher-only data lowered the student's pass@1 within the spread over repeats (±0.077): "
                            "pass@1 0.403 -> 0.336, not a clear loss")

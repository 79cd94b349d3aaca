import json

from typer.testing import CliRunner

from tessy_core.cli import app


def test_tessy_bench_checkpoints_prints_one_row_per_setting_against_checkpoints_off(tmp_path):
    result = CliRunner().invoke(app, [
        "bench", "checkpoints", "--samples", "4", "--concurrency", "2", "--words", "20", "--every", "5,1",
        "--repeats", "1", "--work-dir", str(tmp_path), "--json",
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    rows = {row["checkpoint_every"]: row for row in figures["rows"]}
    assert list(rows) == ["off", 5, 1]
    assert rows["off"]["checkpoints"] == 0 and rows["off"]["slowdown_vs_off"] == 1.0
    # The same samples ran under every setting; checkpointing every step writes the most.
    assert len({row["steps"] for row in rows.values()}) == 1
    assert 0 < rows[5]["checkpoints"] < rows[1]["checkpoints"]
    assert rows[1]["ms_per_checkpoint"] is not None and all(row["steps_per_s"] > 0 for row in rows.values())
    assert not list(tmp_path.iterdir()), "the bench cleans up its checkpoints"


def test_tessy_bench_checkpoints_refuses_a_bad_setting():
    result = CliRunner().invoke(app, ["bench", "checkpoints", "--every", "5,x", "--json"])
    assert result.exit_code != 0
    assert "comma-separated integers" in json.loads(result.stdout)["error"]

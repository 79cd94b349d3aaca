"""The build workspace after a crash or a power cut: unreadable checkpoints and torn lines."""

from __future__ import annotations

import json

from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.engine.records import ModelUsage, Role, SampleCheckpoint, Span


def _state(sample_id: str, steps: int = 3) -> SampleCheckpoint:
    return SampleCheckpoint(
        sample_id=sample_id, attempt=1, steps=steps, active=Role.teacher,
        spans=[Span(Role.student, "Okay so", 0, 7, steps, 2, 0)],
        usage={role: ModelUsage(requests=steps) for role in Role},
    )


def test_a_checkpoint_round_trips_and_replacing_it_leaves_no_temp_files(tmp_path):
    workspace = BuildWorkspace(tmp_path, "b")
    workspace.save_checkpoint(_state("s1", steps=3))
    workspace.save_checkpoint(_state("s1", steps=7))
    assert workspace.load_checkpoint("s1").steps == 7
    assert [p.name for p in workspace.checkpoints_dir.iterdir()] == ["s1.json"]


def test_an_unreadable_checkpoint_restarts_its_sample_instead_of_failing_the_shard(tmp_path, caplog):
    workspace = BuildWorkspace(tmp_path, "b")
    # What a power cut can leave after a rename whose data never reached the disk.
    (workspace.checkpoints_dir / "empty.json").write_text("")
    (workspace.checkpoints_dir / "torn.json").write_text(json.dumps(_state("torn").to_record())[:40])
    (workspace.checkpoints_dir / "wrong.json").write_text(json.dumps({"sample_id": "wrong", "steps": 1}))
    for sample_id in ("empty", "torn", "wrong"):
        assert workspace.load_checkpoint(sample_id) is None
        assert not (workspace.checkpoints_dir / f"{sample_id}.json").exists()
    assert "unreadable checkpoint" in caplog.text


def test_a_checkpoint_filed_under_another_sample_is_not_used(tmp_path):
    workspace = BuildWorkspace(tmp_path, "b")
    (workspace.checkpoints_dir / "s2.json").write_text(json.dumps(_state("s1").to_record()))
    assert workspace.load_checkpoint("s2") is None


def test_a_torn_last_record_is_cut_and_the_next_append_starts_clean(tmp_path):
    workspace = BuildWorkspace(tmp_path, "b")
    workspace.append_record("shard-00000", {"sample_id": "a", "status": "ok"})
    with (workspace.shards_dir / "shard-00000.jsonl").open("a") as handle:
        handle.write('{"sample_id": "b", "sta')  # the process died mid-write
    assert list(workspace.finished_records("shard-00000")) == ["a"]
    workspace.append_record("shard-00000", {"sample_id": "b", "status": "ok"})
    assert list(workspace.finished_records("shard-00000")) == ["a", "b"]

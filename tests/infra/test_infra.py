"""What can be checked of the deployment material without a cluster or a GPU: Kubernetes manifests
against the API schemas (kubernetes-validate, strict), their wiring (selectors, probes, GPUs,
endpoints in step with replicas), build and workers configs through the project's own models,
prefect.yaml through Prefect's deploy config parser and the flow's signature, Dockerfiles through
hadolint, and the vLLM launcher's command line."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tessy_core.builder.config import BuildConfig
from tessy_core.workers.config import WorkersConfig

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests promise to fit
BIN = Path(sys.executable).parent


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _resources() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [(name, doc) for name in kustomization["resources"] for doc in _documents(K8S / name)]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _resources() if doc["kind"] == kind}


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)


@pytest.mark.parametrize("version", [K8S_VERSION, "1.37.0"])
def test_manifests_match_the_kubernetes_api_schemas(version):
    import kubernetes_validate

    resources = _resources()
    assert len(resources) >= 9
    for name, doc in resources:
        kubernetes_validate.validate(doc, version, strict=True)  # raises with the offending path


def test_the_schema_check_catches_a_mistake():
    import kubernetes_validate

    statefulset = copy.deepcopy(_by_kind("StatefulSet")["vllm-teacher"])
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["pth"] = container["readinessProbe"]["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, K8S_VERSION, strict=True)


def test_vllm_servers_have_gpus_health_probes_weights_and_shared_memory():
    services = _by_kind("Service")
    for role in ("teacher", "student"):
        statefulset = _by_kind("StatefulSet")[f"vllm-{role}"]
        pod = statefulset["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
        service = services[statefulset["spec"]["serviceName"]]
        assert service["spec"]["clusterIP"] == "None"  # one address per replica, no load balancing
        assert service["spec"]["selector"].items() <= labels.items()
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        port = int(env["PORT"])
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port}
        assert service["spec"]["ports"][0]["port"] == port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus == container["resources"]["requests"]["nvidia.com/gpu"] == int(env["TENSOR_PARALLEL_SIZE"])
        assert 0 < float(env["GPU_MEMORY_UTILIZATION"]) <= 0.95
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["weights"]["readOnly"] and env["MODEL"].startswith(mounts["weights"]["mountPath"] + "/")
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["weights"]["persistentVolumeClaim"]["claimName"] in _by_kind("PersistentVolumeClaim")
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory" and mounts["dshm"]["mountPath"] == "/dev/shm"
        assert container["args"] == [role]


def _k8s_build_config() -> BuildConfig:
    data = yaml.safe_load(_by_kind("ConfigMap")["tessy-build-config"]["data"]["build.yaml"])
    return BuildConfig.model_validate(data)


def test_the_build_config_lists_one_endpoint_per_replica_of_each_server():
    config = _k8s_build_config()
    statefulsets = _by_kind("StatefulSet")
    pattern = re.compile(r"^http://(?P<set>[a-z0-9-]+)-(?P<index>\d+)\.(?P<service>[a-z0-9-]+)\.tessy\.svc:(?P<port>\d+)/v1$")
    for role, model in (("teacher", config.generation.teacher), ("student", config.generation.student)):
        statefulset = statefulsets[f"vllm-{role}"]
        env = {e["name"]: e["value"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
        matches = [pattern.match(url) for url in model.endpoints]
        assert all(matches), model.endpoints
        assert {m["set"] for m in matches} == {statefulset["metadata"]["name"]}
        assert {m["service"] for m in matches} == {statefulset["spec"]["serviceName"]}
        assert sorted(int(m["index"]) for m in matches) == list(range(statefulset["spec"]["replicas"]))
        assert {m["port"] for m in matches} == {env["PORT"]}
        assert model.served_model_name == env["SERVED_MODEL_NAME"] and model.path == env["MODEL"]


def test_the_prefect_worker_mounts_what_the_build_config_names():
    config = _k8s_build_config()
    deployment = _by_kind("Deployment")["prefect-worker"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for path in (config.work_dir, config.catalog_path, config.lineage.directory, config.generation.teacher.path):
        assert any(path.startswith(mount + "/") for mount in mounts), path
    assert container["command"][:3] == ["prefect", "worker", "start"]
    pool = container["command"][container["command"].index("--pool") + 1]
    deployments = yaml.safe_load((INFRA / "prefect" / "prefect.yaml").read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {pool}
    # Only one worker: the catalog is one DuckDB file on a ReadWriteOnce volume.
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_example_build_configs_validate():
    BuildConfig.model_validate(yaml.safe_load((INFRA / "prefect" / "build.example.yaml").read_text()))
    _k8s_build_config()


def test_the_gpu_node_workers_config_splits_the_gpus_between_the_models():
    from tessy_core.config import load_yaml_model

    config = load_yaml_model(WorkersConfig, INFRA / "vllm" / "node-8gpu.yaml", section="workers")
    share_by_gpu: dict[str, float] = {}
    for server in config.servers:
        gpus = server.env["CUDA_VISIBLE_DEVICES"].split(",")
        assert server.flavor == "gpu" and len(gpus) == server.tensor_parallel_size
        for gpu in gpus:
            share_by_gpu[gpu] = share_by_gpu.get(gpu, 0.0) + server.gpu_memory_utilization
        command = server.command()
        assert "--enable-prefix-caching" in command and "--tensor-parallel-size" in command
    assert sorted(share_by_gpu) == [str(i) for i in range(8)]
    # The teacher serves every other span request: several API processes (`vllm serve`'s entry).
    teacher = next(s for s in config.servers if s.name == "teacher").command()
    assert teacher[1:4] == ["-m", "vllm.entrypoints.cli.main", "serve"]
    assert teacher[teacher.index("--api-server-count") + 1] == "4" and "--model" in teacher
    assert max(share_by_gpu.values()) <= 0.95


def test_prefect_yaml_parses_with_prefects_deploy_parser_and_matches_the_flow():
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint
    from rich.console import Console

    prefect_file = INFRA / "prefect" / "prefect.yaml"
    raw = yaml.safe_load(prefect_file.read_text())
    # Prefect's models ignore unknown keys: a misspelt key would be dropped silently.
    assert set(raw) <= {f.alias or name for name, f in PrefectYamlModel.model_fields.items()}
    printed = Console(record=True, width=200)
    deployments, _ = _load_deploy_configs_and_actions(prefect_file, console=printed)
    assert "Skipping" not in printed.export_text(), printed.export_text()
    assert len(deployments) == len(raw["deployments"]) >= 1
    for raw_deployment, deployment in zip(raw["deployments"], deployments):
        assert set(raw_deployment) <= {f.alias or n for n, f in DeploymentConfig.model_fields.items()}
        path, _, name = deployment["entrypoint"].partition(":")
        flow = load_flow_from_entrypoint(str(REPO / path) + ":" + name)
        flow.validate_parameters(deployment.get("parameters", {}))
        for schedule in deployment.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))


def test_dockerfiles_pass_hadolint(tmp_path):
    dockerfiles = sorted((INFRA / "docker").glob("Dockerfile.*"))
    assert [p.name for p in dockerfiles] == ["Dockerfile.flows", "Dockerfile.vllm"]
    hadolint = BIN / "hadolint"
    result = subprocess.run([str(hadolint), *map(str, dockerfiles)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # And it does complain about a bad one.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    assert subprocess.run([str(hadolint), str(bad)], capture_output=True).returncode != 0


def test_dockerfiles_copy_what_exists():
    for dockerfile in (INFRA / "docker").glob("Dockerfile.*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(INFRA / "vllm" / "serve.sh"), *args], capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k not in {"MODEL", "PORT"}} | env,
    )


def test_serve_script_builds_the_vllm_command_per_role():
    teacher = _serve("--print", "teacher")
    assert teacher.returncode == 0, teacher.stderr
    words = teacher.stdout.split()
    # Four API processes for the teacher: `vllm serve`'s entry point.
    assert words[1:4] == ["-m", "vllm.entrypoints.cli.main", "serve"]
    flags = dict(zip(words[4::2], words[5::2]))
    assert flags["--tensor-parallel-size"] == "4" and flags["--port"] == "8000" and flags["--api-server-count"] == "4"
    assert "--enable-prefix-caching" in words

    student = _serve("--print", "student", TENSOR_PARALLEL_SIZE="2", GPU_MEMORY_UTILIZATION="0.35", MODEL="/m/q")
    words = student.stdout.split()
    assert words[1:3] == ["-m", "vllm.entrypoints.openai.api_server"] and "--api-server-count" not in words
    assert words[words.index("--tensor-parallel-size") + 1] == "2"
    assert words[words.index("--gpu-memory-utilization") + 1] == "0.35"
    assert words[words.index("--model") + 1] == "/m/q" and words[words.index("--port") + 1] == "8001"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "usage"),
        (("--print", "judge"), {}, "usage"),
        (("--print", "student"), {"GPU_MEMORY_UTILIZATION": "1.5"}, "GPU_MEMORY_UTILIZATION"),
        (("--print", "teacher"), {"TENSOR_PARALLEL_SIZE": "four"}, "TENSOR_PARALLEL_SIZE"),
    ],
)
def test_serve_script_rejects_bad_settings(args, env, message):
    result = _serve(*args, **env)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
def test_vllm_accepts_the_launchers_arguments():
    """The printed command parsed by vLLM's own server argument parser (in the vLLM venv)."""
    vllm_python = REPO / ".venvs" / "vllm" / "bin" / "python"
    if not vllm_python.exists():
        pytest.fail("no vLLM venv: run `make vllm-env` (infra/vllm/install-venv.sh)")
    check = (
        "import json, sys\n"
        "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
        "from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args\n"
        "args = make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:])\n"
        "validate_parsed_serve_args(args)\n"
        "print(json.dumps({k: getattr(args, k) for k in ('tensor_parallel_size', 'gpu_memory_utilization',"
        " 'max_model_len', 'enable_prefix_caching', 'max_num_seqs', 'api_server_count')}))\n"
    )
    import json

    def parsed_by_vllm(words: list[str]) -> dict:
        result = subprocess.run(
            [str(vllm_python), "-c", check, *words[words.index("--model"):]], capture_output=True, text=True,
            env={**os.environ, "VLLM_NO_USAGE_STATS": "1"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    for role, tp, api_servers in (("teacher", 4, 4), ("student", 1, None)):
        parsed = parsed_by_vllm(_serve("--print", role).stdout.split())
        assert parsed == {
            "tensor_parallel_size": tp, "gpu_memory_utilization": 0.9, "max_model_len": 40960,
            "enable_prefix_caching": True, "max_num_seqs": 256, "api_server_count": api_servers,
        }
    # The GPU node's `tessy workers` commands too.
    from tessy_core.config import load_yaml_model

    node = load_yaml_model(WorkersConfig, INFRA / "vllm" / "node-8gpu.yaml", section="workers")
    for server in node.servers:
        parsed = parsed_by_vllm(server.command())
        assert parsed["tensor_parallel_size"] == server.tensor_parallel_size and parsed["enable_prefix_caching"]
        assert parsed["api_server_count"] == (server.api_servers if server.api_servers > 1 else None)

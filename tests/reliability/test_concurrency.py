"""Two builds and an ingest, three processes, one catalog file at the same time: DuckDB lets one
process write at a time, so each catalog operation takes its turn (tessy_core.catalog.connection);
all three finish and the catalog ends consistent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tessy_core.catalog import Catalog, build_accounting, build_status, list_dataset_versions
from tessy_core.catalog.connection import first_row

from tests.builder.helpers import LENIENT_VALIDATION, seed_catalog
from tests.reliability.fake_openai import FakeOpenAIServer
from tests.reliability.helpers import REPO, child_env, finish, http_config_dict, start_steps, write_config

pytestmark = pytest.mark.slow


def test_two_builds_and_an_ingest_share_one_catalog(tmp_path, ending_models):
    catalog_path = seed_catalog(tmp_path, 4)
    extra = tmp_path / "more.jsonl"
    extra.write_text("".join(
        json.dumps({"statement": f"Extra problem {i}.", "tests": [{"kind": "stdio", "input": "", "output": f"{i}\n"}]})
        + "\n" for i in range(3000)
    ) + "not json\n")
    env = child_env(tmp_path)
    with FakeOpenAIServer() as server:
        configs = [
            write_config(tmp_path / f"{name}.yaml", http_config_dict(
                tmp_path, ending_models, [server.base_url], dataset=name, verification={"enabled": False},
                validation=LENIENT_VALIDATION, work_dir=str(tmp_path / f"work-{name}"),
                generation={"engine": {"concurrency": 2, "checkpoint_every": 4, "seed": seed}},
            ))
            for seed, name in enumerate(("alpha", "beta"))
        ]
        builds = [start_steps(config, env) for config in configs]
        ingest = subprocess.Popen(
            [str(Path(sys.executable).with_name("tessy")), "catalog", "ingest", str(extra), "--source", "more", "--catalog", str(catalog_path), "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        results = [finish(process) for process in builds]
        ingest_out, ingest_err = ingest.communicate(timeout=600)
    for code, payload, err in results:
        assert code == 0, err[-3000:]
        assert payload["status"] == "published" and payload["version"].endswith("@v1")
        assert payload["counts"] == {"published": 4, "rejected": 0, "failed": 0, "pending": 0}
    assert ingest.returncode == 0, ingest_err[-3000:]
    report = json.loads(ingest_out[ingest_out.find("{"):])
    assert report["read"] == 3001 and report["added"] == 3000 and report["rejected"] == 1

    catalog = Catalog(catalog_path)
    for _, payload, _ in results:
        assert build_status(catalog, payload["build_id"]) == "succeeded"
        assert build_accounting(catalog, payload["build_id"]).total == 4
        assert [v.build_id for v in list_dataset_versions(catalog, payload["dataset"])] == [payload["build_id"]]
    prompts = catalog.read(lambda c: first_row(c.execute("SELECT count(*), count(DISTINCT prompt_id) FROM prompts")))
    assert prompts == (3004, 3004)

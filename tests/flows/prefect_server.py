"""A real `prefect server start` for tests: temporary PREFECT_HOME, analytics off, a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tessy_core.workers.process import free_ports


@dataclass(frozen=True)
class PrefectServer:
    url: str  # http://127.0.0.1:PORT
    home: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self) -> dict[str, str]:
        """The environment a client process (flow, CLI, worker, browser target) needs."""
        return {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
        }

    def post(self, path: str, payload: dict) -> object:
        return self._request("POST", path, payload)

    def get(self, path: str) -> object:
        return self._request("GET", path)

    def _request(self, method: str, path: str, payload: dict | None = None) -> object:
        # A busy server (its SQLite database locked by the services) answers 503: retry as
        # Prefect's own client does.
        for attempt in range(10):
            response = httpx.request(method, f"{self.api_url}{path}", json=payload, timeout=30)
            if response.status_code not in (429, 503) or attempt == 9:
                break
            time.sleep(1 + attempt)
        response.raise_for_status()
        return response.json()


@contextmanager
def prefect_server(home: Path, startup_timeout_s: float = 240.0) -> Iterator[PrefectServer]:
    (port,) = free_ports(1)
    server = PrefectServer(url=f"http://127.0.0.1:{port}", home=home)
    # The UI asks the server where its API is; without this it points at the default port.
    env = {**server.env(), "PREFECT_UI_API_URL": server.api_url}
    env.pop("PREFECT_API_URL")
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {process.returncode}: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"prefect server not healthy after {startup_timeout_s:.0f}s")
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()

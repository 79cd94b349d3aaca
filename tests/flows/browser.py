"""Headless Chromium driven over the DevTools protocol, for UI tests: open a page, wait until it shows
a text, click a tab, read the rendered text, take a screenshot. Debian's `chromium`, no driver."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")

# Clicks the first button, tab or link whose visible text is exactly `text`; true when one was found.
_CLICK = """(text => {
  const nodes = [...document.querySelectorAll('button, [role=tab], a, li')];
  const hit = nodes.find(n => n.innerText && n.innerText.trim() === text);
  if (hit) { hit.click(); return true; }
  return false;
})"""


class Browser:
    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1800, timeout_s: float = 60.0) -> None:
        from websockets.sync.client import connect

        if CHROMIUM is None:
            raise RuntimeError("no chromium on PATH")
        shutil.rmtree(profile, ignore_errors=True)
        self.timeout_s = timeout_s
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        url = self._devtools_url()
        self.ws = connect(url, max_size=None, open_timeout=timeout_s)
        self.next_id = 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.resize(width, height)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if "DevTools listening on " in line:
                return line.split("DevTools listening on ", 1)[1].strip()
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError(f"chromium did not start its DevTools endpoint (exit {self.process.poll()})")

    def _call(self, method: str, session: str | None = None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:  # events arrive in between; skip them
            reply = json.loads(self.ws.recv(timeout=self.timeout_s))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def call(self, method: str, **params):
        return self._call(method, self.session, **params)

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def open(self, url: str, *, until: str | list[str] | None = None) -> str:
        """Navigate and wait until the rendered text holds every string of `until`; returns the text."""
        self.call("Page.navigate", url=url)
        return self.wait_for(until or [])

    def wait_for(self, until: str | list[str]) -> str:
        wanted = [until] if isinstance(until, str) else list(until)
        deadline = time.monotonic() + self.timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if text and all(w in text for w in wanted):
                time.sleep(1.0)  # let the rest of the page (charts, badges) settle
                return self.text()
            time.sleep(0.5)
        raise AssertionError(f"page never showed {wanted!r}; it shows: {text[:2000]!r}")

    def click(self, text: str) -> None:
        if not self.evaluate(f"{_CLICK}({json.dumps(text)})"):
            raise AssertionError(f"nothing to click named {text!r} on the page")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

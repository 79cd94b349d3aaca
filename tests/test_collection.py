"""The suite guards itself: every test file on disk is collected by the README's test command.

pytest silently skips folders it treats as output (its `norecursedirs`: `build`, `dist`, `venv`,
dot-folders, ...); `tests/build` once held 22 tests that no run ever saw.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_test_file_on_disk_is_collected():
    on_disk = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "tests").rglob("test_*.py")
        if "__pycache__" not in path.parts
    }
    # The same invocation as `make test` (its testpaths and ini options), collection only.
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    collected = {line.split("::", 1)[0] for line in listing.stdout.splitlines() if "::" in line}
    assert listing.returncode == 0, f"collection failed:\n{listing.stdout[-3000:]}\n{listing.stderr[-3000:]}"
    missing = sorted(on_disk - collected)
    assert not missing, f"test files on disk that pytest does not collect: {missing}"

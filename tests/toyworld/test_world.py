"""The trained small world: built once into the cache, then held to the claims of issue 3.

The build takes minutes on 2 cores the first time (CI's machine keeps the cache between runs);
the measurement runs the real engine, the real sandbox and student scoring on >= 100 problems.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tessy_core.toyworld.build import build_world
from tessy_core.toyworld.report import measure_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return build_world()


def test_a_built_world_is_reused_not_rebuilt(world):
    before = (world.root / "world.json").stat().st_mtime_ns
    again = build_world()
    assert again.root == world.root
    assert (world.root / "world.json").stat().st_mtime_ns == before
    manifest = again.manifest
    for role in ("teacher", "student"):
        assert (world.model_dir(role) / "config.json").exists()
        assert len(json.loads((world.predictor_dir(role) / "config.json").read_text())["id2label"]) == 2
    # Style is a realistic share of the student's thinking (a quarter to a third).
    assert 0.2 <= manifest["style_token_share"]["student"] <= 0.4


def test_an_opened_world_mines_its_stops_again_when_their_file_is_of_an_older_format(world):
    from tessy_core.predictors.stops import STOPS_FILE, STOPS_FORMAT

    path = world.predictor_dir("teacher") / STOPS_FILE
    mined = json.loads(path.read_text())
    path.write_text(json.dumps({"role": "teacher", "stops": [" Check:", " Thus"]}))  # format 1
    build_world()
    again = json.loads(path.read_text())
    assert again["format"] == STOPS_FORMAT and again["stops"] == mined["stops"]
    # The teacher's stops end on a word's letters where those are as precise (" Check" of " Check:").
    assert " Check" in again["stops"] and again["shortened"][" Check:"] == " Check"


def test_the_world_shows_the_tessy_claim(world):
    report = asyncio.run(measure_world(world))
    figures = report.modes
    summary = json.dumps(report.model_dump(mode="json"), indent=1)
    assert report.problems >= 100
    assert figures["teacher_only"].pass_rate >= 0.8, summary
    assert figures["student_only"].pass_rate <= 0.5, summary
    assert report.tessy_vs_teacher_only >= 0.9, summary
    assert report.style_gap_closed >= 0.7, summary
    assert min(report.predictor_boundary_f1.values()) >= 0.9, summary
    # Interleaving really happened: both models wrote a real share of the tessy thinking.
    assert 0.3 <= figures["tessy"].teacher_token_share <= 0.95, summary

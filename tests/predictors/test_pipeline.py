"""The predictor pipeline on the small model world's teacher traces, whose style spans are known.

The annotator is scripted (it answers from the known spans, in the messy shapes real annotators
use, and sometimes wrongly); everything after it is real: parsing, alignment, stitching, training,
evaluation, the versioned folder, the model card and the catalog registration.
"""

from __future__ import annotations

import json

import pytest

from tessy_core.catalog.connection import Catalog
from tessy_core.catalog.registry import get_predictor
from tessy_core.predictors.annotation import cut_windows
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.learned import LearnedPredictor
from tessy_core.predictors.pipeline import PredictorPipelineConfig, run_pipeline

pytestmark = pytest.mark.slow

WINDOW_WORDS = 40
SHAPES = [
    "{json}",
    "```json\n{json}\n```",
    "Here are the style phrases:\n{json}\nHope this helps!",
    "<think>Find discourse markers [openers].</think>\n{json}",
]


@pytest.fixture(scope="module")
def toy_traces():
    from tessy_core.toyworld.corpus import CorpusConfig, build_corpus
    from tessy_core.toyworld.problems import generate_problems

    problems = generate_problems(40, seed=5, split="predictor-test")
    return build_corpus(problems, "teacher", 160, seed=5, config=CorpusConfig(), allow_injection=True)


class ScriptedAnnotator:
    """Answers from the known labels; every 10th window gets prose without JSON and every 17th a
    phrase that is not in the text, so both kinds of reject are exercised."""

    def __init__(self, known: dict[str, list[str]]):
        self.known = known
        self.calls = 0

    async def annotate(self, text: str) -> str:
        self.calls += 1
        if self.calls % 10 == 0:
            return "I could not find any JSON-worthy phrases, sorry."
        phrases = list(self.known[text])
        if self.calls % 17 == 0:
            phrases.append("By the way,")
        return SHAPES[self.calls % len(SHAPES)].replace("{json}", json.dumps(phrases, ensure_ascii=False))

    async def aclose(self) -> None:
        return None


def _known_phrases(traces) -> dict[str, list[str]]:
    known = {}
    for record in traces:
        for window in cut_windows(record.problem_id, record.thinking, WINDOW_WORDS):
            known[window.text] = [
                record.thinking[max(s, window.start) : min(e, window.end)].strip()
                for s, e in record.style_spans
                if s < window.end and e > window.start
            ]
    return known


def test_toy_world_traces_to_a_registered_predictor(toy_traces, tiny_models, tmp_path):
    traces_file = tmp_path / "traces.jsonl"
    traces_file.write_text(
        "".join(json.dumps({"trace_id": f"t{i}", "text": r.thinking}) + "\n" for i, r in enumerate(toy_traces))
    )
    by_id = {f"t{i}": r for i, r in enumerate(toy_traces)}
    annotator = ScriptedAnnotator(_known_phrases(toy_traces))
    config = PredictorPipelineConfig.model_validate(
        {
            "training": {
                "base_model": str(tiny_models["teacher"]), "name": "toy-teacher", "version": "2026.11.1",
                "role": "teacher", "window_tokens": 96, "max_steps": 80, "learning_rate": 3e-3, "batch_size": 16,
                "eval_every": 40, "threads": 1,
            },
            "output_root": str(tmp_path / "predictors"),
            "traces_file": str(traces_file),
            "annotator": {"base_url": "http://unused/v1", "model": "scripted"},
            "window_words": WINDOW_WORDS,
            "valid_fraction": 0.2,
            "catalog": str(tmp_path / "catalog.duckdb"),
        }
    )
    stages = []
    report = run_pipeline(config, annotator=annotator, progress=lambda stage, done, total: stages.append(stage))

    stats = report.annotation
    assert stats["windows"] == annotator.calls > 100
    assert stats["invalid_json"] == annotator.calls // 10
    assert 0 < stats["unmatched"] <= annotator.calls // 17
    assert stats["accepted"] == stats["windows"] - stats["invalid_json"] - stats["unmatched"]
    assert stats["rejected_share"] == pytest.approx((stats["invalid_json"] + stats["unmatched"]) / stats["windows"])
    assert "annotate" in stages

    # The labels that reached training are exactly the known ones.
    work = config.work_dir
    for line in (work / "train.jsonl").read_text().splitlines()[:30]:
        row = json.loads(line)
        trace = next(r for r in by_id.values() if row["text"] in r.thinking)
        offset = trace.thinking.index(row["text"])
        labelled = {i for s, e in row["style_spans"] for i in range(s, e)}
        known = {i - offset for s, e in trace.style_spans for i in range(s, e)}
        text = row["text"]
        # same style characters (a phrase cut by a window edge loses only the space at the cut)
        assert {i for i in labelled if not text[i].isspace()} == {
            i for i in known if 0 <= i < len(text) and not text[i].isspace()
        }

    predictor = report.predictor
    assert predictor.valid.style_starts.f1 > 0.85 > predictor.baseline.style_starts.f1 + 0.4
    assert predictor.valid.capability_starts.f1 > 0.85
    folder = config.predictor_dir
    assert folder == tmp_path / "predictors" / "toy-teacher" / "2026.11.1"
    card = (folder / "README.md").read_text()
    assert "## Annotation" in card and "rejected share" in card
    assert json.loads((folder / "annotation.json").read_text())["windows"] == stats["windows"]

    assert report.registered is True
    spec = get_predictor(Catalog(tmp_path / "catalog.duckdb"), "toy-teacher", "2026.11.1")
    assert spec.role == "teacher" and spec.path == str(folder.resolve())
    assert spec.metrics["style_starts_f1"] == pytest.approx(predictor.valid.style_starts.f1)
    assert spec.metrics["annotation_rejected_share"] == pytest.approx(stats["rejected_share"])

    # Run again: every stage is already done, nothing is asked or trained twice.
    again = run_pipeline(config, annotator=annotator)
    assert annotator.calls == stats["windows"] and again.predictor == predictor and again.registered is False


async def test_the_trained_predictor_cuts_teacher_chunks_before_style(tmp_path, tiny_models, toy_traces):
    """The folder drives the engine's interface: in a teacher chunk, the boundary falls where the
    next sentence's opener begins."""
    from tessy_core.predictors.labels import LabelledText
    from tessy_core.predictors.training import PredictorTrainingConfig, train_predictor

    rows = [LabelledText(r.thinking, list(r.style_spans)) for r in toy_traces]
    config = PredictorTrainingConfig(
        base_model=str(tiny_models["teacher"]), window_tokens=96, max_steps=80, learning_rate=3e-3, batch_size=16,
        eval_every=40, threads=1, role="teacher",
    )
    train_predictor(rows[:130], rows[130:], config, tmp_path)
    predictor = LearnedPredictor(tmp_path)
    hits = total = 0
    for record in toy_traces[130:]:
        for (s1, e1), (s2, _) in zip(record.style_spans, record.style_spans[1:]):
            total += 1
            context, chunk = record.thinking[:e1], record.thinking[e1 : s2 + 2]
            boundary = await predictor.find_boundary(context, chunk, TokenKind.STYLE, min_offset=1)
            # the cut lands on the space before the next opener (whitespace goes with what follows)
            hits += boundary is not None and e1 + boundary in (s2 - 1, s2)
    assert total > 50 and hits / total > 0.85

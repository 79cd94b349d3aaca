"""Training a real token classifier on a tiny base LM: it learns, the engine reads it the way it was
trained, an interrupted run resumes to the same weights, and a finished folder is an immutable version."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.evaluation import evaluate_predictor
from tessy_core.predictors.labels import build_windows, token_kinds
from tessy_core.predictors.learned import METADATA_FILE, LearnedPredictor
from tessy_core.predictors.training import PredictorTrainingConfig, train_predictor
from tests.predictors.synthetic import labelled_corpus

pytestmark = pytest.mark.slow


class Interrupt(Exception):
    pass


def _config(base_model, **overrides) -> PredictorTrainingConfig:
    settings = dict(
        base_model=str(base_model), name="toy-teacher", version="3", role="teacher", window_tokens=48,
        max_steps=60, learning_rate=3e-3, batch_size=16, eval_every=20, checkpoint_every=20, threads=1,
    )
    settings.update(overrides)
    return PredictorTrainingConfig(**settings)


@pytest.fixture(scope="module")
def corpus():
    return labelled_corpus(200, seed=1), labelled_corpus(30, seed=2)


@pytest.fixture(scope="module")
def trained(tiny_models, corpus, tmp_path_factory):
    train, valid = corpus
    out = tmp_path_factory.mktemp("trained")
    events = []
    report = train_predictor(train, valid, _config(tiny_models["teacher"]), out, progress=events.append)
    return out, report, events


def test_training_lifts_boundary_f1_far_above_the_untrained_head(trained):
    out, report, events = trained
    assert report.baseline.style_starts.f1 < 0.4 and report.baseline.capability_starts.f1 < 0.4
    assert report.valid.style_starts.f1 > 0.9 and report.valid.capability_starts.f1 > 0.9
    assert report.valid.token_accuracy > 0.95 > report.baseline.token_accuracy
    assert [e.step for e in events if e.event == "eval"] == [20, 40, 60]
    assert events[-1].event == "done"
    assert report.best_step in (20, 40, 60)


def test_the_folder_is_a_versioned_predictor_the_engine_loads(trained, corpus):
    out, report, _ = trained
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["window_tokens"] == 48 and metadata["label_shift"] == 1 and metadata["role"] == "teacher"
    card = (out / "README.md").read_text()
    assert "toy-teacher" in card and "untrained head" in card and "pipeline_tag: token-classification" in card
    assert json.loads((out / "metrics.json").read_text())["valid"]["token_accuracy"] == report.valid.token_accuracy
    assert not (out / "checkpoints").exists()
    predictor = LearnedPredictor(out)
    assert predictor.identity == "learned:toy-teacher@3" and predictor.window_tokens == 48
    # Scoring the folder the way the engine loads it reproduces the training-time figures.
    assert evaluate_predictor(out, corpus[1]) == report.valid


async def test_engine_boundaries_agree_with_the_trained_labels(trained, corpus):
    """find_boundary on (context, chunk) returns the start of the first token whose kind the
    classifier predicts as the target, i.e. the same next-token reading training used."""
    out, _, _ = trained
    predictor = LearnedPredictor(out)
    checked = 0
    for item in corpus[1][:10]:
        ids, kinds = token_kinds(item, predictor.tokenizer)
        if len(ids) > predictor.window_tokens:
            continue
        (window,) = build_windows([item], predictor.tokenizer, predictor.window_tokens)
        predicted = predictor._predict_batch([window.input_ids])[0]
        offsets = predictor.tokenizer(item.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        cut_token = len(ids) // 3  # the chunk starts at this token
        cut = offsets[cut_token][0]
        for target in (TokenKind.STYLE, TokenKind.CAPABILITY):
            expected = next(
                (offsets[t][0] - cut for t in range(cut_token, len(ids)) if predicted[t - 1] == target), None
            )
            got = await predictor.find_boundary(item.text[:cut], item.text[cut:], target)
            assert got == expected
        checked += 1
    assert checked >= 5


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_models, corpus, trained, tmp_path):
    train, valid = corpus
    config = _config(tiny_models["teacher"])

    def stop_at_30(event):
        if event.event == "step" and event.step == 30:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_predictor(train, valid, config, tmp_path, progress=stop_at_30)
    assert (tmp_path / "checkpoints" / "last.pt").exists() and not (tmp_path / "metrics.json").exists()
    events = []
    report = train_predictor(train, valid, config, tmp_path, progress=events.append)
    assert report.resumed_from_step == 20 and events[0].event == "resume"
    assert [e.step for e in events if e.event == "step"][0] == 21
    full_out, full_report, _ = trained
    resumed, full = load_file(tmp_path / "model.safetensors"), load_file(full_out / "model.safetensors")
    assert resumed.keys() == full.keys()
    assert all(torch.equal(resumed[key], full[key]) for key in full)
    assert report.valid == full_report.valid and report.best_step == full_report.best_step


def test_a_finished_folder_is_returned_as_is_and_never_overwritten(tiny_models, corpus, trained):
    out, report, _ = trained
    train, valid = corpus
    again = train_predictor(train, valid, _config(tiny_models["teacher"]), out)
    assert again == report
    with pytest.raises(ValueError, match="new folder"):
        train_predictor(train, valid, _config(tiny_models["teacher"], learning_rate=1e-3), out)
    with pytest.raises(ValueError, match="new folder"):
        train_predictor(train[:-1], valid, _config(tiny_models["teacher"]), out)

"""A predictor reads the window it was trained with and runs where the speed is.

- `window_tokens` unset: the predictor's own window (its tessy_predictor.json; 200 for a released
  folder without one); a config value overrides it only when set.
- `device: auto` (the default): CUDA when the process sees one, else CPU.
- A released predictor (plain `save_pretrained` Qwen3ForTokenClassification, label 1 = style,
  next-token shifted, no tessy metadata) is built from the generation config and decides by its
  labels: a head that always says "style" hands over at the first token after the cut-off, one
  that always says "capability" never does.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tessy_core.config import PredictorConfig
from tessy_core.predictors import build_predictor
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.devices import resolve_device
from tests.family_fixtures import build_family_tokenizer, save_released_predictor


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    tokenizer = build_family_tokenizer("qwen3")
    return save_released_predictor(tmp_path_factory.mktemp("released") / "Qwen3-0.6B-predictor", tokenizer)


@pytest.fixture(scope="module")
def trained(released, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained") / "teacher-predictor"
    shutil.copytree(released, folder)
    (folder / "tessy_predictor.json").write_text(json.dumps({"name": "teacher-predictor", "version": "1", "window_tokens": 128}))
    return folder


def test_the_config_leaves_the_window_to_the_predictor_unless_set(released, trained):
    assert PredictorConfig(kind="learned", path="x").window_tokens is None
    assert build_predictor(PredictorConfig(kind="learned", path=str(trained))).window_tokens == 128
    assert build_predictor(PredictorConfig(kind="learned", path=str(trained), window_tokens=64)).window_tokens == 64
    assert build_predictor(PredictorConfig(kind="learned", path=str(released))).window_tokens == 200


def test_auto_is_the_default_device_and_resolves_to_what_the_process_has(released):
    import torch

    assert PredictorConfig(kind="learned", path="x").device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected and resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    predictor = build_predictor(PredictorConfig(kind="learned", path=str(released)))
    assert predictor.device == expected and str(next(predictor.model.parameters()).device).startswith(expected)


def _with_constant_head(predictor, label: int):
    import torch

    with torch.no_grad():
        predictor.model.score.weight.zero_()
        bias = torch.full((2,), -5.0)
        bias[label] = 5.0
        if predictor.model.score.bias is None:
            predictor.model.score.bias = torch.nn.Parameter(bias)
        else:
            predictor.model.score.bias.copy_(bias)
    return predictor


async def test_a_released_folder_decides_by_label_one_for_style_shifted_to_the_next_token(released):
    config = PredictorConfig(kind="learned", path=str(released), device="cpu")
    chunk = " we add the numbers and print"
    style_everywhere = _with_constant_head(build_predictor(config), label=1)
    # Position i says what token i+1 is: the first token of the chunk that can start a span of the
    # other kind is the one after the first token read, at or after min_offset.
    boundary = await style_everywhere.find_boundary("Thus", chunk, TokenKind.STYLE, min_offset=3)
    assert boundary is not None and boundary >= 3 and chunk[boundary - 1] in " de"
    assert await style_everywhere.find_boundary("Thus", chunk, TokenKind.CAPABILITY) is None
    capability_everywhere = _with_constant_head(build_predictor(config), label=0)
    assert await capability_everywhere.find_boundary("Thus", chunk, TokenKind.STYLE) is None
    assert await capability_everywhere.find_boundary("Thus", chunk, TokenKind.CAPABILITY) == 0


async def test_on_the_cpu_a_batch_runs_on_cpu_threads_and_leaves_torchs_setting_as_it_was(released):
    import threading

    import torch

    assert PredictorConfig(kind="learned", path="x").cpu_threads == 1
    predictor = build_predictor(PredictorConfig(kind="learned", path=str(released), device="cpu", cpu_threads=1))
    run, during = predictor._reader.run, []

    def recording_run(steps):
        during.append(torch.get_num_threads())
        return run(steps)

    predictor._reader.run = recording_run
    process_setting = torch.get_num_threads()
    torch.set_num_threads(2)  # the batches' worker threads start at 2
    try:
        await predictor.find_boundary("Thus", " we add the numbers", TokenKind.STYLE, stream="s1")
        await predictor.find_boundary("Thus we add the numbers", " and print", TokenKind.STYLE, stream="s1")
    finally:
        torch.set_num_threads(process_setting)
    assert during == [1, 1]

    # On a thread set to 2, a batch runs on 1 and the thread is at 2 again afterwards.
    step = predictor._reader.plan(predictor._reader.acquire("s2"), "Thus we add", 0)
    seen: list[int] = []

    def on_a_worker():
        torch.set_num_threads(2)
        predictor._read_steps([step])
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=on_a_worker)
    worker.start()
    worker.join()
    assert during[-1] == 1 and seen == [2]

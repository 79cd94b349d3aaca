import threading

import pytest

from tessy_core.model_loading import load_pretrained


def _load_concurrently(path, threads: int = 4, rounds: int = 3) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker():
        start.wait()
        for _ in range(rounds):
            try:
                load_pretrained("AutoModelForCausalLM", path)
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return errors


def test_overlapping_loads_leave_transformers_able_to_tie_weights(tiny_models):
    from transformers import PreTrainedModel

    tie_weights, init_weights = PreTrainedModel.tie_weights, PreTrainedModel.init_weights

    assert _load_concurrently(tiny_models["student"]) == []

    assert PreTrainedModel.tie_weights is tie_weights
    assert PreTrainedModel.init_weights is init_weights
    model = load_pretrained("AutoModelForCausalLM", tiny_models["student"])
    assert model.lm_head.weight.device.type != "meta"
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_an_unknown_class_name_is_a_clear_error(tiny_models):
    with pytest.raises(AttributeError, match="NoSuchModel"):
        load_pretrained("NoSuchModel", tiny_models["student"])

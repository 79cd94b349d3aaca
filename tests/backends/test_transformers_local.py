import asyncio

from tessy_core.backends import SamplingParams
from tessy_core.backends.transformers_local import TransformersBackend


async def test_seeded_samples_are_reproducible_while_two_models_generate_at_once(tiny_models):
    teacher, student = TransformersBackend(str(tiny_models["teacher"])), TransformersBackend(str(tiny_models["student"]))
    prompt = "Okay, let's see. The problem asks"

    async def one(backend: TransformersBackend, seed: int) -> str:
        sampling = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, seed=seed)
        return (await backend.complete(prompt, max_tokens=24, sampling=sampling)).text

    jobs = [(backend, seed) for seed in range(4) for backend in (teacher, student)]
    alone = [await one(backend, seed) for backend, seed in jobs]
    together = await asyncio.gather(*(one(backend, seed) for backend, seed in jobs))
    assert together == alone
    assert len(set(alone)) > 2  # the seeds matter: the texts differ

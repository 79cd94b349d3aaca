"""Answer held-out problems with a student (in process, batched), judge the answers in the sandbox,
and score their thinking under the base student.

Every model sees the same prompts in the same batches with the same seeds: batch b of sample
index j in repeat r is drawn after `torch.manual_seed(seed(r, j, b))`. The prompt is the model's own
chat template opened for generation; the model writes its thinking markers itself, so whether it
keeps the student's format is measured, not imposed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tessy_core.catalog import PromptRecord
from tessy_core.config import ThinkingMarkers
from tessy_core.evaluation.config import EvalSamplingConfig
from tessy_core.evaluation.metrics import JudgedSample, parse_output

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RawOutput:
    prompt_id: str
    repeat: int
    sample_index: int
    text: str
    ended: bool


def batch_seed(seed: int, repeat: int, sample_index: int, batch: int) -> int:
    payload = f"tessy-eval:{seed}:{repeat}:{sample_index}:{batch}".encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big")


def _dtype(precision: str, device: str):
    import torch

    if device == "cpu" or precision == "fp32":
        return torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float16


def load_model(path: str, device: str, precision: str, revision: str | None = None):
    from tessy_core.model_loading import load_pretrained

    tokenizer = load_pretrained("AutoTokenizer", path, revision=revision)
    model = load_pretrained("AutoModelForCausalLM", path, revision=revision, dtype=_dtype(precision, device))
    return tokenizer, model.to(device).eval()


def generation_prompt(tokenizer, statement: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": statement}], tokenize=False, add_generation_prompt=True, enable_thinking=True
    )


def _end_token_ids(tokenizer, model) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def generate(
    model_path: str,
    problems: Sequence[PromptRecord],
    sampling: EvalSamplingConfig,
    *,
    device: str,
    precision: str,
    revision: str | None = None,
    label: str = "model",
    progress: ProgressFn | None = None,
) -> list[RawOutput]:
    """`samples_per_problem` answers per problem in each of `repeats` rounds (left-padded batches)."""
    import torch

    tokenizer, model = load_model(model_path, device, precision, revision)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    end_ids = _end_token_ids(tokenizer, model)
    prompts = [tokenizer.encode(generation_prompt(tokenizer, p.statement), add_special_tokens=False) for p in problems]
    batches = [list(range(i, min(i + sampling.batch_size, len(problems))))
               for i in range(0, len(problems), sampling.batch_size)]
    greedy = sampling.temperature == 0
    kwargs = dict(max_new_tokens=sampling.max_new_tokens, do_sample=not greedy, pad_token_id=pad_id,
                  eos_token_id=end_ids)
    if not greedy:
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)  # 0: off
    total = sampling.repeats * sampling.samples_per_problem * len(problems)
    outputs: list[RawOutput] = []
    for repeat in range(sampling.repeats):
        for sample_index in range(sampling.samples_per_problem):
            for batch_number, indices in enumerate(batches):
                width = max(len(prompts[i]) for i in indices)
                ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(indices), width), dtype=torch.long)
                for row, i in enumerate(indices):
                    ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]):] = 1
                torch.manual_seed(batch_seed(sampling.seed + repeat, repeat, sample_index, batch_number))
                with torch.inference_mode():
                    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
                for row, i in enumerate(indices):
                    new = out[row, width:].tolist()
                    ended = False
                    for position, token in enumerate(new):
                        if token in end_ids:
                            new, ended = new[:position], True
                            break
                    outputs.append(RawOutput(
                        prompt_id=problems[i].prompt_id, repeat=repeat, sample_index=sample_index,
                        text=tokenizer.decode(new, skip_special_tokens=False), ended=ended))
                if progress is not None:
                    progress(label, len(outputs), total)
    del model
    return outputs


def nll_scores(
    base_path: str,
    items: Sequence[tuple[str, str]],
    *,
    device: str,
    precision: str,
    revision: str | None = None,
    batch_size: int = 16,
) -> list[tuple[float, int] | None]:
    """(summed NLL, tokens) of each continuation after its prompt under the base student; None for
    an empty continuation. Right-padded batches; only the continuation's tokens count."""
    import torch

    tokenizer, model = load_model(base_path, device, precision, revision)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limit = getattr(model.config, "max_position_embeddings", None)
    encoded = []
    for prompt, continuation in items:
        p = tokenizer.encode(prompt, add_special_tokens=False)
        c = tokenizer.encode(continuation, add_special_tokens=False) if continuation else []
        if limit is not None and len(p) + len(c) > limit:
            c = c[: max(0, limit - len(p))]
        encoded.append((p, c))
    results: list[tuple[float, int] | None] = [None] * len(items)
    order = [i for i, (_, c) in enumerate(encoded) if c]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            sequence = encoded[i][0] + encoded[i][1]
            ids[row, :len(sequence)] = torch.tensor(sequence)
            mask[row, :len(sequence)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        picked = logprobs.gather(2, ids[:, 1:].to(device)[:, :, None])[:, :, 0].cpu()
        for row, i in enumerate(chunk):
            p, c = encoded[i]
            values = picked[row, len(p) - 1: len(p) - 1 + len(c)]
            results[i] = (float(-values.sum()), len(c))
    del model
    return results


async def _judge_all(outputs: Sequence[RawOutput], parsed, problems: dict[str, PromptRecord], workers: int) -> list:
    from tessy_core.verify import ExecutionLimits, Sandbox, SandboxConfig, verify_answer_async

    with Sandbox(SandboxConfig(workers=workers)) as sandbox:
        async def judge(output: RawOutput, answer: str):
            prompt = problems[output.prompt_id]
            hidden = [test.model_dump() for test in prompt.tests if test.hidden]
            limits = ExecutionLimits(time_limit_s=prompt.time_limit_s, memory_limit_mb=prompt.memory_limit_mb)
            return await verify_answer_async(sandbox, answer, hidden, limits, language=prompt.language)  # type: ignore[arg-type]

        return await asyncio.gather(*(judge(o, p.answer) for o, p in zip(outputs, parsed)))


def judge(
    outputs: Sequence[RawOutput],
    problems: Sequence[PromptRecord],
    markers: ThinkingMarkers,
    *,
    base_path: str,
    base_thinking_prompt: Callable[[str], str],
    device: str,
    precision: str,
    sandbox_workers: int,
    revision: str | None = None,
) -> list[JudgedSample]:
    """Format, pass/fail on the hidden tests (tessy's sandbox) and base-student NLL of each output."""
    by_id = {p.prompt_id: p for p in problems}
    parsed = [parse_output(o.text, markers, o.ended, by_id[o.prompt_id].language) for o in outputs]
    verdicts = asyncio.run(_judge_all(outputs, parsed, by_id, sandbox_workers))
    scores = nll_scores(
        base_path,
        [(base_thinking_prompt(by_id[o.prompt_id].statement), p.thinking) for o, p in zip(outputs, parsed)],
        device=device, precision=precision, revision=revision,
    )
    judged = []
    for output, parse, verdict, score in zip(outputs, parsed, verdicts, scores):
        judged.append(JudgedSample(
            prompt_id=output.prompt_id, repeat=output.repeat, sample_index=output.sample_index,
            passed=verdict.accepted, verdict=verdict.verdict.value, format_errors=list(parse.format_errors),
            thinking_tokens=score[1] if score else 0, nll_sum=score[0] if score else None,
            nll_tokens=score[1] if score else 0, output=output.text,
        ))
    return judged

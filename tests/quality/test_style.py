"""Style-consistency figures and gate: units on exact cases, and directions on the tiny models."""

from __future__ import annotations

import asyncio

import pytest

from tessy_core.backends.base import SamplingParams
from tessy_core.builder.style_score import (
    StudentStyle,
    measure_style,
    style_runs,
    style_token_rate,
)
from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.lexicon import LexiconPredictor
from tessy_core.quality.expectations import ShareBand, ValidationPolicy
from tessy_core.quality.policy import split_by_policy
from tessy_core.quality.style import (
    StyleGate,
    Tfidf,
    sampled,
    teacher_token_share,
    tfidf_similarities,
)
from tests.quality.samples import frame

STUDENT_PHRASES = ["Okay", "Hmm", "Wait", "so", "let me"]


def words(text: str) -> int:
    return len(text.split())


class TestUnits:
    def test_teacher_share_from_spans(self):
        spans = [{"role": "student", "tokens_kept": 2}, {"role": "teacher", "tokens_kept": 6},
                 {"role": "student", "tokens_kept": 2}]
        assert teacher_token_share(spans) == 0.6
        assert teacher_token_share([]) is None and teacher_token_share(None) is None

    def test_style_token_rate_exact(self):
        predictor = LexiconPredictor(["Okay", "so"])
        rate = asyncio.run(style_token_rate(predictor, "Okay, so compute x.", words))
        assert rate == 0.5
        assert asyncio.run(style_token_rate(predictor, "compute x then y", words)) == 0.0
        assert asyncio.run(style_token_rate(predictor, "Okay so", words)) == 1.0
        assert asyncio.run(style_token_rate(predictor, "", words)) is None

    @pytest.mark.parametrize("window", [16, 24, 256])
    def test_style_runs_tile_the_text_whatever_the_window(self, window):
        predictor = LexiconPredictor(STUDENT_PHRASES)
        text = ("Okay, so we read n. Compute the prefix sums over the array. Hmm, wait, let me check "
                "the bound: n is at most 1e5, so O(n log n) is fine. Okay.")
        runs = asyncio.run(style_runs(predictor, text, window))
        assert runs[0][0] == 0 and runs[-1][1] == len(text)
        assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(runs, runs[1:]))
        style = [text[s:e].strip(" ,.:") for s, e, kind in runs if kind is TokenKind.STYLE]
        assert style[:2] == ["Okay, so", "Hmm, wait, let me"] and "so" in style
        capability = " ".join(text[s:e] for s, e, kind in runs if kind is TokenKind.CAPABILITY)
        assert "prefix sums" in capability and "Okay" not in capability

    def test_tfidf(self):
        docs = [["a", "b", "c"], ["a", "b", "c"], ["x", "y"], ["a", "x"]]
        model = Tfidf(docs)
        assert model.cosine([docs[0]], [docs[1]]) == [pytest.approx(1.0)]
        assert model.cosine([docs[0]], [docs[2]]) == [0.0]
        assert 0 < model.cosine([docs[0]], [docs[3]])[0] < 1
        # a token in every document weighs less than a rare one
        assert model.idf[model.vocabulary["a"]] < model.idf[model.vocabulary["y"]]
        assert model.cosine([[]], [["a"]]) == [0.0]
        sims = tfidf_similarities(["a b c", "x y"], ["a b d", "p q"], str.split)
        assert sims[0] > 0.3 and sims[1] == 0.0

    def test_sampling_is_deterministic(self):
        keys = [f"k{i}" for i in range(50)]
        assert sampled(keys, 5, seed=1) == sampled(reversed(keys), 5, seed=1)
        assert sampled(keys, 5, seed=1) != sampled(keys, 5, seed=2)
        assert sampled(keys, None, 0) == sorted(keys) and len(sampled(keys, 80, 0)) == 50

    def test_gate_rejects_unknown_settings(self):
        with pytest.raises(ValueError):
            StyleGate(max_nll=3.0)
        with pytest.raises(ValueError):
            StyleGate(min_tfidf_similarity=1.5)


# --- on the tiny models ---------------------------------------------------------------------------

ANSWER = "print(sum(map(int, input().split())))"
PROBLEMS = {f"p{i}": f"Read {i + 2} numbers and print their sum." for i in range(4)}


@pytest.fixture(scope="module")
def world(tiny_models):
    import torch

    from tessy_core.backends.transformers_local import TransformersBackend
    from tessy_core.chat import chat_format_for, load_tokenizer
    from tessy_core.config import ModelConfig

    torch.set_num_threads(1)
    configs = {
        "student": ModelConfig(name="student", path=str(tiny_models["student"]), family="qwen3", backend="transformers"),
        "teacher": ModelConfig(name="teacher", path=str(tiny_models["teacher"]), family="harmony", backend="transformers"),
    }
    backends = {role: TransformersBackend(c.path, name=role) for role, c in configs.items()}
    formats = {role: chat_format_for(c) for role, c in configs.items()}
    tokenizer = load_tokenizer(configs["student"].path)

    async def write(role: str, problem: str, seed: int) -> str:
        completion = await backends[role].complete(
            formats[role].thinking_prompt(problem), max_tokens=40, sampling=SamplingParams(seed=seed))
        return completion.text

    async def texts(role: str, seed: int) -> dict[str, str]:
        return {pid: await write(role, problem, seed + i) for i, (pid, problem) in enumerate(PROBLEMS.items())}

    written = {
        "student": asyncio.run(texts("student", 100)),
        "teacher": asyncio.run(texts("teacher", 200)),
        "reference": asyncio.run(texts("student", 300)),  # the student's own answers, another draw
    }
    student = StudentStyle(backend=backends["student"], chat_format=formats["student"],
                           predictor=LexiconPredictor(STUDENT_PHRASES),
                           tokenize=lambda text: tokenizer.encode(text, add_special_tokens=False))
    return {"student": student, "written": written}


def rows_written_by(world, role: str) -> list[dict]:
    fmt = world["student"].chat_format
    rows = []
    for index, (pid, problem) in enumerate(PROBLEMS.items()):
        thinking = world["written"][role][pid]
        kept = max(1, len(thinking) // 4)
        spans = [{"role": role, "text": thinking, "tokens_kept": kept}]
        rows.append({"sample_id": f"{role}-{index}", "prompt_id": pid, "mode": "tessy", "status": "ok",
                     "problem": problem, "thinking": thinking, "answer": ANSWER,
                     "assistant": fmt.assistant_text(thinking, ANSWER), "spans": spans})
    return rows


def references(world) -> dict[str, str]:
    fmt = world["student"].chat_format
    return {pid: fmt.assistant_text(text, "") for pid, text in world["written"]["reference"].items()}


def test_student_text_is_more_likely_under_the_student_and_more_similar_to_its_answers(world):
    gate = StyleGate(reference_prompts=4)
    own = asyncio.run(measure_style(rows_written_by(world, "student"), world["student"], gate, references(world)))
    foreign = asyncio.run(measure_style(rows_written_by(world, "teacher"), world["student"], gate, references(world)))
    assert own.version["samples_scored"] == foreign.version["samples_scored"] == 4
    assert own.version["student_nll_mean"] < foreign.version["student_nll_mean"] - 0.1, (own.version, foreign.version)
    assert own.version["tfidf_similarity_mean"] > foreign.version["tfidf_similarity_mean"], (own.version, foreign.version)
    assert own.version["tfidf_prompts"] == 4
    assert own.version["teacher_token_share_mean"] == 0.0 and foreign.version["teacher_token_share_mean"] == 1.0
    # per sample too, for most prompts
    lower = sum(a.student_nll < b.student_nll for a, b in zip(own.samples, foreign.samples))
    assert lower >= 3


def test_style_token_rate_follows_the_student_phrases(world):
    base = rows_written_by(world, "teacher")
    styled = [{**row, "thinking": "Okay, so " + row["thinking"] + " Hmm, wait, let me see."} for row in base]
    plain = asyncio.run(measure_style(base, world["student"], StyleGate(reference_prompts=0)))
    more = asyncio.run(measure_style(styled, world["student"], StyleGate(reference_prompts=0)))
    assert more.version["style_token_rate_mean"] > (plain.version["style_token_rate_mean"] or 0.0)


def test_the_gate_passes_student_data_and_blocks_teacher_data_with_reasons(world):
    own_rows, foreign_rows = rows_written_by(world, "student"), rows_written_by(world, "teacher")
    probe = StyleGate(reference_prompts=4)
    own = asyncio.run(measure_style(own_rows, world["student"], probe, references(world)))
    foreign = asyncio.run(measure_style(foreign_rows, world["student"], probe, references(world)))
    nll_cut = (own.version["student_nll_mean"] + foreign.version["student_nll_mean"]) / 2
    sim_cut = (own.version["tfidf_similarity_mean"] + foreign.version["tfidf_similarity_mean"]) / 2
    gate = StyleGate(max_mean_student_nll=nll_cut, min_tfidf_similarity=sim_cut, reference_prompts=4,
                     teacher_share=ShareBand(low=0.0, high=0.5), max_sample_student_nll=nll_cut)
    passed = asyncio.run(measure_style(own_rows, world["student"], gate, references(world)))
    blocked = asyncio.run(measure_style(foreign_rows, world["student"], gate, references(world)))
    assert passed.success and not passed.blocks_publish, passed.summary_markdown
    assert blocked.blocks_publish
    assert set(blocked.failed_checks) == {"student_nll", "teacher_share", "tfidf_similarity"}
    assert "FAILED: publishing blocked" in blocked.summary_markdown
    # per-sample rejections route the worst samples to the rejected split, with the reason
    assert blocked.sample_rejections
    labelled = split_by_policy(frame(foreign_rows), ValidationPolicy(publish="all_with_verdicts"),
                               extra_reasons=blocked.sample_rejections)
    rejected = labelled.filter(labelled["split"] == "rejected")
    assert rejected.height == len(blocked.sample_rejections)
    assert all(r.startswith("style: student NLL") for r in rejected["rejection_reason"].to_list())


def test_unmeasurable_checks_fail_clearly(world):
    gate = StyleGate(min_tfidf_similarity=0.1, reference_prompts=4)
    report = asyncio.run(measure_style(rows_written_by(world, "student"), world["student"], gate, references=None))
    assert report.failed_checks == ["tfidf_similarity"]
    assert "not measured" in report.checks[0].detail
    failed = [{**row, "status": "failed"} for row in rows_written_by(world, "student")]
    empty = asyncio.run(measure_style(failed, world["student"], StyleGate(max_mean_student_nll=5.0)))
    assert empty.version["samples_scored"] == 0 and empty.failed_checks == ["student_nll"]


def test_the_style_gate_folds_into_the_suite_result_and_the_policy(world):
    from tessy_core.quality.expectations import SuiteResult, with_style

    policy = ValidationPolicy(style={"max_mean_student_nll": 0.5, "reference_prompts": 0})
    assert policy.style.max_mean_student_nll == 0.5
    report = asyncio.run(measure_style(rows_written_by(world, "teacher"), world["student"], policy.style))
    clean = SuiteResult(success=True, on_failure="publish_with_warnings", outcomes=[], gx_result={"success": True},
                        summary_markdown="### Sample validation PASSED")
    assert with_style(clean, None) is clean
    merged = with_style(clean, report)
    assert merged.failed_checks == ["style_student_nll"] and merged.blocks_publish
    assert merged.gx_result["tessy_style"]["version"]["samples_scored"] == 4
    assert "Style consistency FAILED" in merged.summary_markdown
    warned = with_style(clean, report.model_copy(update={"on_failure": "publish_with_warnings"}))
    assert not warned.success and not warned.blocks_publish

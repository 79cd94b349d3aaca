"""The world's generator: problems whose hidden tests catch each family's bug, traces with exact labels."""

from __future__ import annotations

from random import Random

import pytest

from tessy_core.toyworld.corpus import CorpusConfig, build_corpus, compose_trace
from tessy_core.toyworld.families import FAMILIES, FAMILY_BY_NAME, STUDENT_WEAK_FAMILIES
from tessy_core.toyworld.problems import generate_problems, outputs_match, passes_tests, run_inline
from tessy_core.toyworld.styles import STYLES, find_phrase_spans
from tessy_core.toyworld.tokenizers import MARKUPS, generation_prompt, train_tokenizer


def test_at_least_fifteen_families_each_with_a_bug_the_hidden_tests_catch():
    assert len(FAMILIES) >= 15
    problems = generate_problems(len(FAMILIES) * 2, seed=3, split="t")
    assert {p.family for p in problems} == set(FAMILY_BY_NAME)
    for problem in problems:
        family = FAMILY_BY_NAME[problem.family]
        assert 5 <= len(problem.tests) <= 6 and problem.hidden_tests
        assert passes_tests(problem.reference_solution, problem.tests), problem.family
        buggy = family.code(family.buggy)
        assert not all(outputs_match(run_inline(buggy, t.input), t.output) for t in problem.hidden_tests), problem.family


def test_generation_is_deterministic_and_splits_do_not_share_statements():
    first = generate_problems(40, seed=7, split="train")
    assert [p.to_row() for p in first] == [p.to_row() for p in generate_problems(40, seed=7, split="train")]
    fresh = generate_problems(40, seed=7, split="eval", exclude_statements=[p.statement for p in first])
    assert not {p.statement for p in first} & {p.statement for p in fresh}


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_style_spans_are_exactly_the_style_phrases(role):
    problems = generate_problems(20, seed=1, split="t")
    for trace in build_corpus(problems, role, 60, seed=2, config=CorpusConfig(), allow_injection=True):
        phrases = STYLES["teacher"].phrases + STYLES["student"].phrases
        assert sorted(trace.style_spans) == find_phrase_spans(trace.thinking, phrases)
        other = STYLES["student" if role == "teacher" else "teacher"]
        family = FAMILY_BY_NAME[trace.family]
        for start, end in trace.injected_spans:
            text = trace.thinking[start:end]
            if (start, end) in trace.style_spans:
                assert text in other.phrases + other.first_openers
            else:  # teacher reasoning the student reads (and implements), never learns to write
                assert role == "student" and trace.approach == "correct"
                assert text.rstrip(".") in (family.correct.clause, *family.correct.edges)


def test_the_student_reads_teacher_reasoning_and_implements_it():
    problems = [p for p in generate_problems(60, seed=1, split="t") if p.family in STUDENT_WEAK_FAMILIES]
    config = CorpusConfig(injected_trace_share=1.0, teacher_reasoning_prob=1.0, student_weak_bug_rate=1.0)
    for problem in problems:
        trace = compose_trace(problem, "student", Random(problem.source_id), config, allow_injection=True)
        family = FAMILY_BY_NAME[problem.family]
        read = [trace.thinking[s:e] for s, e in trace.injected_spans if (s, e) not in trace.style_spans]
        assert family.correct.clause + "." in read
        assert family.code(family.correct) in trace.answer


def test_injected_student_opener_replaces_the_teachers_own():
    """In interleaved decoding the teacher goes on with the work right after the student's style."""
    problems = generate_problems(20, seed=1, split="t")
    config = CorpusConfig(injected_trace_share=1.0, injected_sentence_prob=1.0)
    trace = compose_trace(problems[0], "teacher", Random(0), config, allow_injection=True)
    teacher_phrases = set(STYLES["teacher"].phrases)
    assert trace.injected_spans
    for start, end in trace.injected_spans:
        following = trace.thinking[end:].lstrip()
        assert not any(following.startswith(phrase) for phrase in teacher_phrases)


def test_the_student_is_systematically_weak():
    problems = generate_problems(200, seed=4, split="t")
    traces = build_corpus(problems, "student", 400, seed=5, config=CorpusConfig(), allow_injection=False)
    weak = [t for t in traces if t.family in STUDENT_WEAK_FAMILIES]
    strong = [t for t in traces if t.family not in STUDENT_WEAK_FAMILIES]
    assert sum(t.approach == "buggy" for t in weak) / len(weak) > 0.7
    assert all(t.approach == "correct" for t in strong)
    teacher = build_corpus(problems, "teacher", 100, seed=5, config=CorpusConfig(), allow_injection=False)
    assert all(t.approach == "correct" for t in teacher)


def test_the_two_models_have_different_tokenizers_and_chat_formats():
    problems = generate_problems(30, seed=1, split="t")
    tokenizers = {}
    for role in ("teacher", "student"):
        traces = build_corpus(problems, role, 50, seed=0, config=CorpusConfig(), allow_injection=False)
        tokenizers[role] = train_tokenizer((t.thinking for t in traces), MARKUPS[role], vocab_size=400)
    teacher_prompt = generation_prompt(tokenizers["teacher"], "Add two numbers.")
    student_prompt = generation_prompt(tokenizers["student"], "Add two numbers.")
    assert teacher_prompt.endswith("<|start|>assistant") and "<|im_start|>" in student_prompt
    assert tokenizers["teacher"].get_vocab() != tokenizers["student"].get_vocab()
    # Marker tokens are single tokens, as in the real models.
    assert len(tokenizers["student"].encode("</think>", add_special_tokens=False)) == 1
    assert len(tokenizers["teacher"].encode("<|end|>", add_special_tokens=False)) == 1


@pytest.mark.slow
def test_a_miniature_world_builds_in_stages_and_resumes(tmp_path):
    """Mechanics only (a few training steps): every stage writes its output, a finished world is
    reused, and a build interrupted after some stages redoes only the missing ones."""
    from tessy_core.toyworld.build import PredictorSettings, WorldConfig, build_world
    from tessy_core.toyworld.lm_training import LMConfig

    tiny_lm = LMConfig(hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, steps=2, batch_size=8)
    config = WorldConfig(
        train_problems=40, eval_problems=5, traces_per_model=64, teacher_vocab=300, student_vocab=300,
        teacher_lm=tiny_lm, student_lm=tiny_lm,
        predictors=PredictorSettings(train_traces=32, valid_traces=16, window_tokens=32, max_steps=2, batch_size=8),
    )
    stages: list[str] = []
    world = build_world(config, root=tmp_path / "w", progress=lambda stage, _: stages.append(stage))
    assert {"problems", "corpus", "lm", "predictor", "done"} <= set(stages)
    assert len(world.eval_problems()) == 5
    manifest = world.manifest
    assert set(manifest["predictor_training"]) == {"teacher", "student"}

    stages.clear()
    build_world(config, root=tmp_path / "w", progress=lambda stage, _: stages.append(stage))
    assert stages == []  # reused as is

    (world.root / "world.json").unlink()
    import shutil

    shutil.rmtree(world.predictor_dir("student"))
    build_world(config, root=tmp_path / "w", progress=lambda stage, _: stages.append(stage))
    assert stages == ["predictor", "done"]
    generation = world.generation_config()
    assert generation.teacher.family.value == "harmony" and generation.student.family.value == "qwen3"

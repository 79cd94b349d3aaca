from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tessy_core.catalog import (
    BuildAccounting,
    BuildConflict,
    BuildStatus,
    Catalog,
    CatalogNotFound,
    DatasetVersion,
    LineageEvent,
    ModelSpec,
    PredictorSpec,
    PromptFilter,
    RegistryConflict,
    SampleOutcome,
    SampleOutcomeRow,
    UnknownBuild,
    UnknownPrompts,
    build_accounting,
    catalog_stats,
    get_model,
    get_predictor,
    ingest,
    lineage_events,
    list_dataset_versions,
    list_rejects,
    prompt_id_for,
    record_build_finish,
    record_build_start,
    record_lineage_event,
    register_dataset_version,
    register_model,
    register_predictor,
    select_prompts,
    upsert_build_samples,
)
from tests.catalog import samples


@pytest.fixture
def stocked(catalog: Catalog, tmp_path: Path) -> Catalog:
    rows = [
        {"statement": "Easy math A.", "tests": [{"kind": "stdio", "input": "1", "output": "1"}], "difficulty": "easy", "tags": ["math"]},
        {"statement": "Hard graph B.", "tests": [{"kind": "stdio", "input": "1", "output": "1"}], "difficulty": "hard", "tags": ["graphs", "dfs"]},
        {"statement": "Call C.", "tests": [{"kind": "call", "fn_name": "f", "args": [], "expected": 1}], "difficulty": "easy"},
        {"statement": "Bare D.", "tests": [], "language": "cpp"},
    ]
    ingest(catalog, [samples.write_jsonl(tmp_path / "native.jsonl", rows)], "native")
    ingest(catalog, [samples.write_jsonl(tmp_path / "other.jsonl", [{"prompt": "Other E."}, "oops"])], "other")  # type: ignore[list-item]
    return catalog


def _ids(catalog: Catalog, prompt_filter: PromptFilter) -> set[str]:
    return {record.prompt_id for record in select_prompts(catalog, prompt_filter)}


def _id(statement: str) -> str:
    return prompt_id_for(statement)


def test_select_prompts_by_filter(stocked: Catalog) -> None:
    assert _ids(stocked, PromptFilter(sources=["other"])) == {_id("Other E.")}
    assert _ids(stocked, PromptFilter(tags_any=["dfs", "nothing"])) == {_id("Hard graph B.")}
    assert _ids(stocked, PromptFilter(difficulties=["easy"])) == {_id("Easy math A."), _id("Call C.")}
    assert _ids(stocked, PromptFilter(languages=["cpp"])) == {_id("Bare D.")}
    assert _ids(stocked, PromptFilter(test_kinds=["call"])) == {_id("Call C.")}
    assert _ids(stocked, PromptFilter(sources=["native"], min_tests=1)) == {
        _id("Easy math A."),
        _id("Hard graph B."),
        _id("Call C."),
    }
    assert _ids(stocked, PromptFilter(prompt_ids=[_id("Bare D."), "0" * 16])) == {_id("Bare D.")}
    assert len(select_prompts(stocked)) == 5


def test_selection_is_ordered_and_limited(stocked: Catalog) -> None:
    everything = [record.prompt_id for record in select_prompts(stocked)]
    assert everything == sorted(everything)
    assert [record.prompt_id for record in select_prompts(stocked, PromptFilter(limit=2))] == everything[:2]
    with pytest.raises(ValidationError):
        PromptFilter(limit=0)
    with pytest.raises(ValidationError):
        PromptFilter(min_test=1)  # type: ignore[call-arg]


def test_exclude_prompts_already_used_by_a_dataset(stocked: Catalog) -> None:
    a, b, c = _id("Easy math A."), _id("Hard graph B."), _id("Call C.")
    record_build_start(stocked, "b1", "code-sft", {"k": 10})
    upsert_build_samples(
        stocked,
        "b1",
        [
            SampleOutcomeRow(sample_id="s-a", prompt_id=a, sample_index=0, outcome=SampleOutcome.PUBLISHED),
            SampleOutcomeRow(sample_id="s-b", prompt_id=b, sample_index=0, outcome=SampleOutcome.FAILED, reason="timeout"),
            SampleOutcomeRow(sample_id="s-c", prompt_id=c, sample_index=0, outcome=SampleOutcome.PENDING),
        ],
    )
    native = PromptFilter(sources=["native"], exclude_dataset="code-sft")
    assert _ids(stocked, native) == {b, _id("Bare D.")}  # failed prompts are offered again
    strict = native.model_copy(update={"exclude_outcomes": list(SampleOutcome)})
    assert _ids(stocked, strict) == {_id("Bare D.")}
    assert len(_ids(stocked, PromptFilter(sources=["native"], exclude_dataset="another"))) == 4


def test_build_lifecycle_accounts_for_every_sample(stocked: Catalog) -> None:
    a, b = _id("Easy math A."), _id("Hard graph B.")
    digest = record_build_start(stocked, "b1", "code-sft", {"teacher": "t", "k": 10})
    assert record_build_start(stocked, "b1", "code-sft", {"k": 10, "teacher": "t"}) == digest  # resume
    with pytest.raises(BuildConflict):
        record_build_start(stocked, "b1", "code-sft", {"teacher": "t", "k": 20})

    planned = [
        SampleOutcomeRow(sample_id=f"{p}:{i}", prompt_id=p, sample_index=i, outcome=SampleOutcome.PENDING)
        for p in (a, b)
        for i in range(2)
    ]
    assert upsert_build_samples(stocked, "b1", planned) == 4
    assert build_accounting(stocked, "b1") == BuildAccounting(build_id="b1", pending=4)

    updates = [
        SampleOutcomeRow(sample_id=f"{a}:0", prompt_id=a, sample_index=0, outcome=SampleOutcome.FAILED, reason="oom"),
        SampleOutcomeRow(sample_id=f"{a}:0", prompt_id=a, sample_index=0, outcome=SampleOutcome.PUBLISHED),
        SampleOutcomeRow(sample_id=f"{a}:1", prompt_id=a, sample_index=1, outcome=SampleOutcome.REJECTED, reason="tests failed"),
        SampleOutcomeRow(sample_id=f"{b}:0", prompt_id=b, sample_index=0, outcome=SampleOutcome.FAILED, reason="server died"),
    ]
    assert upsert_build_samples(stocked, "b1", updates) == 3  # the last word on a:0 counts
    accounting = build_accounting(stocked, "b1")
    assert accounting == BuildAccounting(build_id="b1", published=1, rejected=1, failed=1, pending=1)
    assert accounting.total == 4 and not accounting.complete

    finished = record_build_finish(stocked, "b1", BuildStatus.FAILED)
    assert finished == accounting
    stored = stocked.read(lambda c: c.execute("SELECT status, counts, finished_at IS NOT NULL FROM builds").fetchall())
    assert stored[0][0] == "failed" and '"pending":1' in stored[0][1].replace(" ", "") and stored[0][2]


def test_build_sample_errors(stocked: Catalog) -> None:
    a = _id("Easy math A.")
    sample = SampleOutcomeRow(sample_id="x", prompt_id=a, sample_index=0, outcome=SampleOutcome.PENDING)
    with pytest.raises(UnknownBuild):
        upsert_build_samples(stocked, "nope", [sample])
    record_build_start(stocked, "b1", "ds", {})
    with pytest.raises(UnknownPrompts, match="ffffffffffffffff"):
        upsert_build_samples(stocked, "b1", [sample, sample.model_copy(update={"sample_id": "y", "prompt_id": "f" * 16})])
    assert build_accounting(stocked, "b1").total == 0  # the failed batch wrote nothing
    with pytest.raises(ValidationError, match="needs a reason"):
        SampleOutcomeRow(sample_id="z", prompt_id=a, sample_index=0, outcome=SampleOutcome.REJECTED)
    with pytest.raises(ValueError, match="final status"):
        record_build_finish(stocked, "b1", "running")
    with pytest.raises(ValueError, match="plain JSON"):
        record_build_start(stocked, "b2", "ds", {"path": Path("/x")})


def test_models_and_predictors_register_once(catalog: Catalog) -> None:
    model = ModelSpec(name="qwen3-8b", family="qwen3", path_or_hf_id="Qwen/Qwen3-8B", revision="abc")
    assert register_model(catalog, model) is True
    assert register_model(catalog, model) is False
    with pytest.raises(RegistryConflict, match="qwen3-8b"):
        register_model(catalog, model.model_copy(update={"revision": "def"}))
    assert get_model(catalog, "qwen3-8b") == model
    assert get_model(catalog, "unknown") is None

    predictor = PredictorSpec(
        name="teacher-boundary", version="1", path="/models/p", role="teacher", base_model="qwen3-0.6b", metrics={"acc": 0.9}
    )
    assert register_predictor(catalog, predictor) is True
    assert register_predictor(catalog, predictor) is False
    assert register_predictor(catalog, predictor.model_copy(update={"version": "2", "metrics": {"acc": 0.93}})) is True
    with pytest.raises(RegistryConflict):
        register_predictor(catalog, predictor.model_copy(update={"path": "/elsewhere"}))
    assert get_predictor(catalog, "teacher-boundary", "2").metrics == {"acc": 0.93}


def test_dataset_versions_register_once_and_list_in_order(catalog: Catalog) -> None:
    v1 = DatasetVersion(name="code-sft", version="1", uri="s3://b/code-sft/1", manifest_checksum="aa", row_counts={"train": 10})
    v2 = DatasetVersion(
        name="code-sft", version="2", uri="s3://b/code-sft/2", manifest_checksum="bb", row_counts={"train": 20}, parent_version="1", build_id="b2"
    )
    assert register_dataset_version(catalog, v1) is True
    assert register_dataset_version(catalog, v2) is True
    assert register_dataset_version(catalog, v1.model_copy(update={"created_at": v2.created_at})) is False
    with pytest.raises(RegistryConflict, match="publish a new version"):
        register_dataset_version(catalog, v1.model_copy(update={"manifest_checksum": "cc"}))
    listed = list_dataset_versions(catalog, "code-sft")
    assert [(v.version, v.row_counts, v.parent_version) for v in listed] == [("1", {"train": 10}, None), ("2", {"train": 20}, "1")]


def test_lineage_events_are_stored_once_per_event_id(catalog: Catalog) -> None:
    start = LineageEvent(run_id="r1", event_type="START", job_name="build", inputs=["catalog.prompts"], payload={"eventType": "START"})
    complete = LineageEvent(run_id="r1", event_type="COMPLETE", job_name="build", outputs=["code-sft@1"])
    assert record_lineage_event(catalog, start) is True
    assert record_lineage_event(catalog, start) is False
    assert record_lineage_event(catalog, complete) is True
    events = lineage_events(catalog, "r1")
    assert [(e.event_type, e.inputs, e.outputs, e.payload) for e in events] == [
        ("START", ["catalog.prompts"], [], {"eventType": "START"}),
        ("COMPLETE", [], ["code-sft@1"], {}),
    ]


def test_stats_and_rejects(stocked: Catalog) -> None:
    stats = catalog_stats(stocked)
    assert (stats.prompts, stats.rejects, stats.rejects_by_reason) == (5, 1, {"not_an_object": 1})
    by_source = {row.source: (row.prompts, row.with_tests, row.with_call_tests) for row in stats.sources}
    assert by_source == {"native": (4, 3, 1), "other": (1, 0, 0)}
    (reject,) = list_rejects(stocked, limit=5)
    assert (reject.source, reject.line_no, reject.raw_text) == ("other", 2, '"oops"')
    assert list_rejects(stocked, source="native") == []


def test_reading_a_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogNotFound, match="no catalog at"):
        catalog_stats(Catalog(tmp_path / "absent.duckdb"))

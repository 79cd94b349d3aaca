-- Catalog schema. Every statement is idempotent: a writer applies this file on its first connection.
--
-- Tests are a JSON column of `prompts`, not a table of their own: the verifier always reads all of a
-- prompt's tests together, they never change once ingested (the prompt is content-addressed), and a
-- columnar store reads the column only when a query selects it. One row per prompt keeps ingestion a
-- single insert per batch and idempotency a single key. `n_tests`, `n_hidden_tests` and `test_kind`
-- are kept as plain columns so that filters never need to parse the JSON.

CREATE TABLE IF NOT EXISTS prompts (
    prompt_id VARCHAR PRIMARY KEY,          -- sha256 of the normalized statement, 16 hex chars
    source VARCHAR NOT NULL,                -- ingestion source name (`--source`)
    source_id VARCHAR,                      -- the row's id or url in its source
    license VARCHAR,
    statement VARCHAR NOT NULL,
    tests JSON NOT NULL,                    -- list of {"kind": "stdio"|"call", ...}
    n_tests INTEGER NOT NULL,
    n_hidden_tests INTEGER NOT NULL,
    test_kind VARCHAR NOT NULL,             -- none | stdio | call | mixed
    fn_name VARCHAR,
    starter_code VARCHAR,
    time_limit_s DOUBLE NOT NULL,
    memory_limit_mb INTEGER NOT NULL,
    difficulty VARCHAR,
    tags VARCHAR[] NOT NULL,
    language VARCHAR NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    source_file VARCHAR NOT NULL,           -- where the first copy of this prompt was read
    source_line BIGINT NOT NULL             -- 1-based line (JSONL) or row (Parquet) in source_file
);

CREATE TABLE IF NOT EXISTS prompt_rejects (
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    line_no BIGINT NOT NULL,
    raw_sha256 VARCHAR NOT NULL,            -- of the full original row, so re-ingesting adds nothing
    reason_code VARCHAR NOT NULL,           -- malformed_json, not_utf8, invalid_tests, ...
    reason VARCHAR NOT NULL,
    row_format VARCHAR,                     -- the shape tried; NULL when the row never parsed
    raw_text VARCHAR NOT NULL,              -- the original row (capped, see raw_chars)
    raw_chars BIGINT NOT NULL,              -- length of the original row before any cap
    rejected_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_file, line_no, raw_sha256)
);

CREATE TABLE IF NOT EXISTS models (
    name VARCHAR PRIMARY KEY,
    family VARCHAR NOT NULL,
    path_or_hf_id VARCHAR NOT NULL,
    revision VARCHAR,
    tokenizer VARCHAR,
    registered_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS predictors (
    name VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    role VARCHAR NOT NULL,                  -- teacher | student: whose thinking text it segments
    base_model VARCHAR NOT NULL,
    metrics JSON NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS builds (
    build_id VARCHAR PRIMARY KEY,
    dataset_name VARCHAR NOT NULL,
    config JSON NOT NULL,
    config_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,                -- running | succeeded | failed | cancelled
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    counts JSON                             -- outcome -> samples, frozen when the build finishes
);

-- No foreign keys: DuckDB re-checks them on updates of referenced rows (a build's status), so the
-- catalog checks build and prompt ids itself, inside the same transaction as the write.
CREATE TABLE IF NOT EXISTS build_samples (
    build_id VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,
    prompt_id VARCHAR NOT NULL,
    sample_index INTEGER NOT NULL,
    outcome VARCHAR NOT NULL,               -- published | rejected | failed | pending
    reason VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (build_id, sample_id)
);

CREATE TABLE IF NOT EXISTS dataset_versions (
    name VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    uri VARCHAR NOT NULL,
    manifest_checksum VARCHAR NOT NULL,
    row_counts JSON NOT NULL,               -- split -> rows
    parent_version VARCHAR,
    build_id VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS lineage_events (
    event_id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,            -- OpenLineage: START | RUNNING | COMPLETE | FAIL | ABORT | OTHER
    event_time TIMESTAMPTZ NOT NULL,
    job_name VARCHAR NOT NULL,
    inputs JSON NOT NULL,                   -- dataset names
    outputs JSON NOT NULL,
    payload JSON NOT NULL                   -- the full event as emitted
);

-- SFT evaluations of published versions (`tessy evaluate sft`): the student fine-tuned on a version,
-- then the base and the fine-tuned student measured on held-out problems. One row per evaluation run;
-- the flat figure columns are the means over repeats, `results` holds everything (per repeat too).
CREATE TABLE IF NOT EXISTS evaluations (
    evaluation_id VARCHAR PRIMARY KEY,
    dataset_name VARCHAR NOT NULL,
    dataset_version VARCHAR NOT NULL,       -- vN, as in dataset_versions.version
    manifest_checksum VARCHAR NOT NULL,     -- sha256 of the version's manifest.json
    base_model VARCHAR NOT NULL,            -- models.name
    base_model_path VARCHAR NOT NULL,
    tuned_model_path VARCHAR,
    config JSON NOT NULL,                   -- what shapes the figures (EvaluationConfig.identity())
    config_hash VARCHAR NOT NULL,
    code JSON NOT NULL,                     -- {"package", "version", "git_commit"}
    eval_prompt_ids JSON NOT NULL,          -- the held-out problems, ordered
    status VARCHAR NOT NULL,                -- running | succeeded | failed
    error VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    lineage_run_id VARCHAR,
    pass_at_1_base DOUBLE,
    pass_at_1_tuned DOUBLE,
    style_nll_base DOUBLE,
    style_nll_tuned DOUBLE,
    format_ok_base DOUBLE,
    format_ok_tuned DOUBLE,
    results JSON                            -- {"base": ModelFigures, "tuned": ModelFigures, "training": ...}
);

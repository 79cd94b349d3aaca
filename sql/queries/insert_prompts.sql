-- New prompts of one ingestion batch (`incoming_prompts`, registered from Arrow); prompts already in
-- the catalog are skipped, so re-ingesting a file adds nothing. Returns the number inserted.
INSERT INTO prompts (
    prompt_id, source, source_id, license, statement, tests, n_tests, n_hidden_tests, test_kind,
    fn_name, starter_code, time_limit_s, memory_limit_mb, difficulty, tags, language, ingested_at,
    source_file, source_line
)
SELECT
    i.prompt_id, i.source, i.source_id, i.license, i.statement, i.tests, i.n_tests, i.n_hidden_tests,
    i.test_kind, i.fn_name, i.starter_code, i.time_limit_s, i.memory_limit_mb, i.difficulty, i.tags,
    i.language, i.ingested_at, i.source_file, i.source_line
FROM incoming_prompts AS i
WHERE NOT EXISTS (SELECT 1 FROM prompts AS p WHERE p.prompt_id = i.prompt_id);

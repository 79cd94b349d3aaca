-- Prompts matching a `PromptFilter`. A NULL parameter means "no constraint"; ORDER BY prompt_id makes
-- a selection repeatable. `exclude_dataset` skips prompts that any build of that dataset already has
-- a sample for, with an outcome in `exclude_outcomes`.
SELECT
    p.prompt_id, p.source, p.source_id, p.license, p.statement, p.tests, p.fn_name, p.starter_code,
    p.time_limit_s, p.memory_limit_mb, p.difficulty, p.tags, p.language, p.ingested_at
FROM prompts AS p
WHERE ($prompt_ids::VARCHAR[] IS NULL OR p.prompt_id IN (SELECT unnest($prompt_ids::VARCHAR[])))
  AND ($sources::VARCHAR[] IS NULL OR list_contains($sources::VARCHAR[], p.source))
  AND ($tags_any::VARCHAR[] IS NULL OR list_has_any(p.tags, $tags_any::VARCHAR[]))
  AND ($difficulties::VARCHAR[] IS NULL OR list_contains($difficulties::VARCHAR[], p.difficulty))
  AND ($languages::VARCHAR[] IS NULL OR list_contains($languages::VARCHAR[], p.language))
  AND ($test_kinds::VARCHAR[] IS NULL OR list_contains($test_kinds::VARCHAR[], p.test_kind))
  AND ($min_tests::INTEGER IS NULL OR p.n_tests >= $min_tests::INTEGER)
  AND ($exclude_dataset::VARCHAR IS NULL OR NOT EXISTS (
        SELECT 1
        FROM build_samples AS s
        JOIN builds AS b ON b.build_id = s.build_id
        WHERE b.dataset_name = $exclude_dataset::VARCHAR
          AND s.prompt_id = p.prompt_id
          AND list_contains($exclude_outcomes::VARCHAR[], s.outcome)
  ))
ORDER BY p.prompt_id
LIMIT $limit::BIGINT;

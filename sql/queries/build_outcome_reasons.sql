-- Every sample of one build accounted for: samples per outcome (published, rejected, failed,
-- pending) and reason, with the prompts they cover.
SELECT outcome, reason, count(*) AS samples, count(DISTINCT prompt_id) AS prompts
FROM build_samples
WHERE build_id = $build_id
GROUP BY outcome, reason
ORDER BY outcome, reason NULLS FIRST;

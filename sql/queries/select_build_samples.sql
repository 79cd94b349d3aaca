-- Every sample of one build with where it stands, in a stable order.
SELECT sample_id, prompt_id, sample_index, outcome, reason
FROM build_samples
WHERE build_id = $build_id
ORDER BY prompt_id, sample_index, sample_id;

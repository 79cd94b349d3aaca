SELECT outcome, count(*) AS samples
FROM build_samples
WHERE build_id = $build_id
GROUP BY outcome;

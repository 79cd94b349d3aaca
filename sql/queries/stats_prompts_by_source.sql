SELECT
    source,
    count(*) AS prompts,
    count(*) FILTER (WHERE n_tests > 0) AS with_tests,
    count(*) FILTER (WHERE test_kind IN ('call', 'mixed')) AS with_call_tests
FROM prompts
GROUP BY source
ORDER BY source;

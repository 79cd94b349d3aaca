-- The newest build of a dataset with this config that did not succeed (a killed build stays
-- `running`): rerunning the same config resumes it instead of planning a new one.
SELECT build_id, status
FROM builds
WHERE dataset_name = $dataset_name AND config_hash = $config_hash AND status <> 'succeeded'
ORDER BY started_at DESC
LIMIT 1;

SELECT build_id, dataset_name, config_hash, status, started_at, finished_at, counts
FROM builds
WHERE build_id = $build_id;

-- A new build, or a resumed one (same id and config: checked by the caller) running again.
INSERT INTO builds (build_id, dataset_name, config, config_hash, status, started_at)
VALUES ($build_id, $dataset_name, $config, $config_hash, 'running', $started_at)
ON CONFLICT (build_id) DO UPDATE SET status = 'running', finished_at = NULL, counts = NULL;

-- A started evaluation (status running); `finish_evaluation` fills in its figures.
INSERT INTO evaluations (
    evaluation_id, dataset_name, dataset_version, manifest_checksum, base_model, base_model_path,
    config, config_hash, code, eval_prompt_ids, status, started_at, lineage_run_id
)
VALUES (
    $evaluation_id, $dataset_name, $dataset_version, $manifest_checksum, $base_model, $base_model_path,
    $config, $config_hash, $code, $eval_prompt_ids, 'running', $started_at, $lineage_run_id
)
ON CONFLICT (evaluation_id) DO NOTHING;

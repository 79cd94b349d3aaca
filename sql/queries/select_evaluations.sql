-- Evaluations of one dataset (and version, when given), newest first; NULL `status` lists every status.
SELECT
    evaluation_id, dataset_name, dataset_version, manifest_checksum, base_model, base_model_path,
    tuned_model_path, config, config_hash, code, eval_prompt_ids, status, error, started_at, finished_at,
    lineage_run_id, pass_at_1_base, pass_at_1_tuned, style_nll_base, style_nll_tuned, format_ok_base,
    format_ok_tuned, results
FROM evaluations
WHERE dataset_name = $dataset_name
  AND ($dataset_version::VARCHAR IS NULL OR dataset_version = $dataset_version::VARCHAR)
  AND ($status::VARCHAR IS NULL OR status = $status::VARCHAR)
ORDER BY started_at DESC, evaluation_id;

-- Close an evaluation: succeeded with its figures, or failed with the error.
UPDATE evaluations
SET status = $status, error = $error, finished_at = $finished_at, tuned_model_path = $tuned_model_path,
    pass_at_1_base = $pass_at_1_base, pass_at_1_tuned = $pass_at_1_tuned,
    style_nll_base = $style_nll_base, style_nll_tuned = $style_nll_tuned,
    format_ok_base = $format_ok_base, format_ok_tuned = $format_ok_tuned, results = $results
WHERE evaluation_id = $evaluation_id;

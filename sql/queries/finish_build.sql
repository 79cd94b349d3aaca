UPDATE builds
SET status = $status, finished_at = $finished_at, counts = $counts
WHERE build_id = $build_id;

-- Lineage runs of one build that started and never ended (their process was killed): the run that
-- resumes the build closes them with ABORT. The build is the version of the run's input dataset.
SELECT started.run_id
FROM lineage_events AS started
WHERE started.job_name = $job_name
  AND started.event_type = 'START'
  AND json_extract_string(started.payload, '$.inputs[0].facets.version.datasetVersion') = $build_id
  AND NOT EXISTS (
      SELECT 1 FROM lineage_events AS ended
      WHERE ended.run_id = started.run_id AND ended.event_type IN ('COMPLETE', 'FAIL', 'ABORT')
  )
ORDER BY started.event_time, started.run_id;

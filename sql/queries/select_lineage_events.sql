SELECT event_id, run_id, event_type, event_time, job_name, inputs, outputs, payload
FROM lineage_events
WHERE run_id = $run_id
ORDER BY event_time, event_id;

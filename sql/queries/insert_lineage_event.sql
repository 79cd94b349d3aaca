-- Re-sending an event (same event_id) after a retry records it once.
INSERT INTO lineage_events (event_id, run_id, event_type, event_time, job_name, inputs, outputs, payload)
VALUES ($event_id, $run_id, $event_type, $event_time, $job_name, $inputs, $outputs, $payload)
ON CONFLICT (event_id) DO NOTHING;

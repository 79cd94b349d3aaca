-- One batch of sample outcomes (`incoming_samples`); a sample reported again takes its latest outcome.
INSERT INTO build_samples (build_id, sample_id, prompt_id, sample_index, outcome, reason, updated_at)
SELECT build_id, sample_id, prompt_id, sample_index, outcome, reason, updated_at
FROM incoming_samples
ON CONFLICT (build_id, sample_id) DO UPDATE SET
    prompt_id = excluded.prompt_id,
    sample_index = excluded.sample_index,
    outcome = excluded.outcome,
    reason = excluded.reason,
    updated_at = excluded.updated_at;

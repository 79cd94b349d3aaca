INSERT INTO models (name, family, path_or_hf_id, revision, tokenizer, registered_at)
VALUES ($name, $family, $path_or_hf_id, $revision, $tokenizer, $registered_at)
ON CONFLICT (name) DO NOTHING;

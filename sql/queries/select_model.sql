SELECT name, family, path_or_hf_id, revision, tokenizer
FROM models
WHERE name = $name;

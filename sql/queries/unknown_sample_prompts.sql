-- Prompt ids of incoming samples that the catalog does not know (a few, for the error message).
SELECT DISTINCT i.prompt_id
FROM incoming_samples AS i
WHERE NOT EXISTS (SELECT 1 FROM prompts AS p WHERE p.prompt_id = i.prompt_id)
ORDER BY i.prompt_id
LIMIT 5;

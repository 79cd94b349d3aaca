SELECT
    (SELECT count(*) FROM prompts) AS prompts,
    (SELECT count(*) FROM prompt_rejects) AS rejects,
    (SELECT count(*) FROM models) AS models,
    (SELECT count(*) FROM predictors) AS predictors,
    (SELECT count(*) FROM builds) AS builds,
    (SELECT count(*) FROM dataset_versions) AS dataset_versions,
    (SELECT count(*) FROM lineage_events) AS lineage_events;

SELECT name, version, path, role, base_model, metrics
FROM predictors
WHERE name = $name AND version = $version;

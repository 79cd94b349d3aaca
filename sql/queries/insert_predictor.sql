INSERT INTO predictors (name, version, path, role, base_model, metrics, registered_at)
VALUES ($name, $version, $path, $role, $base_model, $metrics, $registered_at)
ON CONFLICT (name, version) DO NOTHING;

-- Versions of one dataset, oldest first; `version` NULL lists them all.
SELECT name, version, uri, manifest_checksum, row_counts, parent_version, build_id, created_at
FROM dataset_versions
WHERE name = $name AND ($version::VARCHAR IS NULL OR version = $version::VARCHAR)
ORDER BY created_at, version;

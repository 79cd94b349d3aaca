INSERT INTO dataset_versions (
    name, version, uri, manifest_checksum, row_counts, parent_version, build_id, created_at
)
VALUES (
    $name, $version, $uri, $manifest_checksum, $row_counts, $parent_version, $build_id, $created_at
)
ON CONFLICT (name, version) DO NOTHING;

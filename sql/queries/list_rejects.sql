-- Most recent rejects first; `source` NULL lists every source.
SELECT source, source_file, line_no, reason_code, reason, row_format, raw_text, raw_chars, rejected_at
FROM prompt_rejects
WHERE $source::VARCHAR IS NULL OR source = $source::VARCHAR
ORDER BY rejected_at DESC, source_file, line_no
LIMIT $limit;

-- Rejected rows of one ingestion batch (`incoming_rejects`); a row rejected before (same file, line
-- and content) is not recorded twice.
INSERT INTO prompt_rejects (
    source, source_file, line_no, raw_sha256, reason_code, reason, row_format, raw_text, raw_chars,
    rejected_at
)
SELECT
    i.source, i.source_file, i.line_no, i.raw_sha256, i.reason_code, i.reason, i.row_format,
    i.raw_text, i.raw_chars, i.rejected_at
FROM incoming_rejects AS i
WHERE NOT EXISTS (
    SELECT 1 FROM prompt_rejects AS r
    WHERE r.source_file = i.source_file AND r.line_no = i.line_no AND r.raw_sha256 = i.raw_sha256
);

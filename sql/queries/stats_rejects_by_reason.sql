SELECT reason_code, count(*) AS rows
FROM prompt_rejects
GROUP BY reason_code
ORDER BY reason_code;

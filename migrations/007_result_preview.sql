-- A list of tasks shows a result over 2 KiB as a preview, made when the result is stored, so
-- that a list never reads a large result. Results stored before get a preview of their type
-- alone (the rest of such a preview is in the task itself).
ALTER TABLE tasks ADD COLUMN result_preview TEXT
    CHECK (result_preview IS NULL OR json_valid(result_preview));
UPDATE tasks SET result_preview = json_object('type', json_extract(result, '$.type'))
WHERE length(CAST(result AS BLOB)) > 2048 AND json_type(result, '$.type') = 'text';
UPDATE tasks SET result_preview = '{}'
WHERE length(CAST(result AS BLOB)) > 2048 AND result_preview IS NULL;

-- Tools, max_steps and structured output for agents; the tool-call journal.
ALTER TABLE agents ADD COLUMN tools TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tools));
ALTER TABLE agents ADD COLUMN max_steps INTEGER NOT NULL DEFAULT 8 CHECK (max_steps BETWEEN 1 AND 50);
ALTER TABLE agents ADD COLUMN json_schema TEXT CHECK (json_schema IS NULL OR json_valid(json_schema));

CREATE TABLE tool_calls (
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    output      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, step, tool, arguments)
) WITHOUT ROWID;

-- Callbacks: each agent may have a callback_url, and signs its callbacks with its own secret
-- (filled in for existing agents when hookd opens the file: SQLite cannot make base64 here).
ALTER TABLE agents ADD COLUMN callback_url TEXT;
ALTER TABLE agents ADD COLUMN callback_secret TEXT;

-- Callbacks: one row per final result to POST to an agent's callback_url, inserted in the
-- transaction that stores the result, so a crash cannot lose it (tasks/callbacks.py sends them).
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,             -- UUIDv7, sent as webhook-id: the same on every attempt
    task_id          TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    -- Whose callback_secret signs it; SET NULL when the agent is deleted (the delivery then fails).
    agent_id         TEXT REFERENCES agents (id) ON DELETE SET NULL,
    url              TEXT NOT NULL,                -- the agent's callback_url when the task ended
    -- pending:   waiting for its next attempt at next_attempt_at.
    -- delivered: the receiver answered 2xx (delivered_at).
    -- failed:    given up: 410 Gone, a refused address, no agent, or out of attempts (last_error).
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    last_attempt_at  REAL,
    last_status_code INTEGER,                      -- the receiver's last HTTP status; NULL if none answered
    last_error       TEXT,                         -- why the last attempt did not deliver, for a human
    created_at       REAL NOT NULL,
    delivered_at     REAL,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);

-- The delivery loop: pending deliveries by when they are due.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- A task's deliveries (admin API), and retention's cascade from tasks.
CREATE INDEX deliveries_by_task ON deliveries (task_id);

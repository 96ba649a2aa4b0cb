-- hookd's database: the one description of its current shape. A new file gets this
-- whole script; a file made by an older hookd gets the scripts in migrations/ whose number
-- is above its PRAGMA user_version, in order. A change here needs a migration there too
-- (tests/test_migrations.py checks that both paths end in the same schema).
--
-- Times are Unix epoch seconds (REAL). Ids are UUIDv7 text: time-ordered, so
-- inserts append to the end of every index and "newest first" is ORDER BY id DESC.

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    prompt          TEXT NOT NULL DEFAULT '',      -- the system message
    input_template  TEXT,                          -- NULL: the default rendering
    llm             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(llm)),
                                                   -- {provider, model, base_url, api_key_env}; never a key
    max_attempts    INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_s       REAL NOT NULL DEFAULT 120 CHECK (timeout_s > 0),
    max_concurrency INTEGER CHECK (max_concurrency IS NULL OR max_concurrency >= 1),
    rate_limit      TEXT,                          -- like '60/min'; NULL: HOOKD_RATE_LIMIT
    -- active: webhooks accepted, queued tasks run.
    -- paused: webhooks answered 409, queued tasks wait until the agent is active again.
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    token_sha256    BLOB NOT NULL UNIQUE,          -- SHA-256 of the webhook token; the token itself is never stored
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    -- The signature its webhooks must carry (NULL: none). 'standard-webhooks': webhook-signature
    -- over "{webhook-id}.{webhook-timestamp}.{body}"; 'github': X-Hub-Signature-256 over the body.
    signature_type   TEXT CHECK (signature_type IN ('standard-webhooks', 'github')),
    -- Kept as given because computing the HMAC needs it; never shown by the API after it is set.
    signature_secret TEXT CHECK ((signature_type IS NULL) = (signature_secret IS NULL)),
    tools           TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tools)),
                                                   -- [{type: http_request | read_webpage | notify, …}]; never a key
    max_steps       INTEGER NOT NULL DEFAULT 8 CHECK (max_steps BETWEEN 1 AND 50),
                                                   -- model turns per run
    json_schema     TEXT CHECK (json_schema IS NULL OR json_valid(json_schema)),
                                                   -- the answer's shape; NULL: free text
    callback_url    TEXT,                          -- final results are POSTed here; NULL: no callbacks
    callback_secret TEXT,                          -- whsec_<base64>: signs the callbacks; shown to admins only.
                                                   -- NULL only in a file from before callbacks until hookd opens it
    mcp_servers     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(mcp_servers)),
                                                   -- [{name, command | url, …}]; never a secret (env_from, headers_env)
    knowledge_top_k INTEGER NOT NULL DEFAULT 4 CHECK (knowledge_top_k BETWEEN 0 AND 20)
                                                   -- chunks of its sources put in each run's prompt; 0: none
);

CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    -- SET NULL keeps a deleted agent's finished results readable by task id.
    agent_id      TEXT REFERENCES agents (id) ON DELETE SET NULL,
    -- PENDING: acknowledged, waiting for a worker (run_after says from when).
    -- STARTED: a worker is running it; attempts counts this run.
    -- RETRY:   the last attempt failed transiently; waits until run_after.
    -- SUCCESS, FAILURE: final; result is set and never changes again.
    status        TEXT NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE')),
    payload       TEXT NOT NULL CHECK (json_valid(payload)),
    result        TEXT CHECK (result IS NULL OR json_valid(result)),
    last_error    TEXT CHECK (last_error IS NULL OR json_valid(last_error)),
                                                   -- the failed attempt behind a RETRY
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),  -- the agent's, when the task was accepted
    run_after     REAL NOT NULL,                   -- not claimed before this time
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    -- What a list of tasks shows of a result over 2 KiB (tasks/store.py list_preview); NULL
    -- for a smaller one, which a list shows whole.
    result_preview TEXT CHECK (result_preview IS NULL OR json_valid(result_preview)),
    -- While STARTED: the server running it (a random id per process) and until when it is
    -- that server's (tasks/store.py take_over_expired); NULL otherwise.
    owner         TEXT,
    lease_expires_at REAL,
    CHECK ((status IN ('SUCCESS', 'FAILURE')) = (result IS NOT NULL))
);

-- The claim query: runnable tasks in run_after order. Partial, so it holds only the queue.
CREATE INDEX tasks_queue ON tasks (run_after) WHERE status IN ('PENDING', 'RETRY');
-- Per-agent concurrency: how many of an agent's tasks are running.
CREATE INDEX tasks_running ON tasks (agent_id) WHERE status = 'STARTED';
-- Admin listing, newest first, optionally for one agent.
CREATE INDEX tasks_by_agent ON tasks (agent_id, id);
-- Admin listing filtered by status.
CREATE INDEX tasks_by_status ON tasks (status, id);
-- Retention: the oldest finished tasks first.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE status IN ('SUCCESS', 'FAILURE');

-- Idempotency keys (Idempotency-Key, webhook-id or X-GitHub-Delivery) an agent saw in the last
-- 24 hours: a request repeating one gets the task the first one made, not a new one.
CREATE TABLE idempotency_keys (
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,                     -- SHA-256 of the raw body (of a GET: its query string)
    task_id     TEXT NOT NULL,                     -- no reference: the key may outlive a short HOOKD_RESULT_TTL_DAYS
    created_at  REAL NOT NULL,
    PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;

-- Retention: the oldest keys first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- The tool-call journal: each tool call that succeeded in a run of a task, committed as soon
-- as it succeeded. A later attempt of the task that makes the same call at the same step
-- (step, tool and arguments as canonical JSON) replays the output instead of calling again.
-- Deleted with its task.
CREATE TABLE tool_calls (
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,                  -- the model turn that asked for the call, from 1
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,                     -- canonical JSON: sorted keys, no spaces
    output      TEXT NOT NULL,                     -- what the model was given
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, step, tool, arguments)
) WITHOUT ROWID;

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

-- Knowledge: documents uploaded to an agent, cut into chunks (agents/knowledge.py), searched
-- with FTS5 before each run.
CREATE TABLE sources (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,                      -- shown to the model beside each chunk
    format     TEXT NOT NULL CHECK (format IN ('text', 'markdown', 'html')),
    bytes      INTEGER NOT NULL,                   -- the uploaded text's size in UTF-8
    chunks     INTEGER NOT NULL,
    created_at REAL NOT NULL
);
-- An agent's sources (listing, the cascade when it is deleted, "has it any?" before a run).
CREATE INDEX sources_by_agent ON sources (agent_id, id);

-- Each agent with sources gets a number n, and its chunks the ids from n·2^32 to n·2^32 +
-- 2^32 - 1: one agent's chunks are one rowid range, and FTS5 reads only that range of its
-- index (it takes `rowid BETWEEN` into its scan), so a search costs what the agent's own
-- chunks cost, however many other agents have. n stays below 2^31 so ids fit in 64 bits.
CREATE TABLE knowledge_ranges (
    id       INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL UNIQUE REFERENCES agents (id) ON DELETE CASCADE
);

CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY,                 -- in its agent's range (knowledge_ranges)
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    nth       INTEGER NOT NULL,                    -- the chunk's place in its source, from 0
    body      TEXT NOT NULL
);
-- Deleting a source deletes its chunks through this index.
CREATE INDEX chunks_by_source ON chunks (source_id);

-- The full-text index over the chunks. External content (content='chunks'): the text is
-- stored once, in chunks, where the store reads it back; the index holds only tokens and
-- positions. The price is keeping the two in step, which the two triggers below do for
-- every insert and delete, including the cascades from a deleted source or agent (chunks
-- are never updated). A plain FTS5 table would store every chunk's text twice; a
-- contentless one cannot delete rows before SQLite 3.43.
-- unicode61 with remove_diacritics 2: "Zoë" finds "zoe", in every script. No stemming
-- (porter), which suits English only.
CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    body,
    content = 'chunks', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_indexed AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, body) VALUES (new.id, new.body);
END;
-- An external-content index forgets a row only when given the text it indexed.
CREATE TRIGGER chunks_unindexed AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- hookd's PostgreSQL database: the one description of its current shape, as schema.sql at the
-- repository root is SQLite's. A new database gets this whole script; one made by an older
-- hookd gets the scripts in migrations/ above its hookd_schema.version, in order (the store
-- applies them under an advisory lock, so nodes starting together don't race). A change
-- here needs a migration there too.
--
-- The tables, columns and status values are SQLite's, so both stores return the same values:
-- times are Unix epoch seconds (double precision, as exact as SQLite's REAL), ids are UUIDv7
-- text (time-ordered: "newest first" is ORDER BY id DESC). JSON columns are text, not jsonb:
-- a payload comes back exactly as accepted (key order, spacing), and a result as written.
-- Ids and names compare in the "C" collation, byte by byte like SQLite's, whatever the
-- database's locale: ORDER BY name and id < $1 then mean the same on both backends.

-- The schema's version: one row. 1 is this script's first shape; migration NNN sets NNN.
CREATE TABLE hookd_schema (
    version integer NOT NULL
);

CREATE TABLE agents (
    id              text COLLATE "C" PRIMARY KEY,
    name            text COLLATE "C" NOT NULL UNIQUE,
    description     text NOT NULL DEFAULT '',
    prompt          text NOT NULL DEFAULT '',      -- the system message
    input_template  text,                          -- NULL: the default rendering
    llm             text NOT NULL DEFAULT '{}' CHECK (llm::json IS NOT NULL),
                                                   -- {provider, model, base_url, api_key_env}; never a key
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_s       double precision NOT NULL DEFAULT 120 CHECK (timeout_s > 0),
    max_concurrency integer CHECK (max_concurrency IS NULL OR max_concurrency >= 1),
    rate_limit      text,                          -- like '60/min'; NULL: HOOKD_RATE_LIMIT
    -- active: webhooks accepted, queued tasks run.
    -- paused: webhooks answered 409, queued tasks wait until the agent is active again.
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    token_sha256    bytea NOT NULL UNIQUE,         -- SHA-256 of the webhook token; the token itself is never stored
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    -- The signature its webhooks must carry (NULL: none). 'standard-webhooks': webhook-signature
    -- over "{webhook-id}.{webhook-timestamp}.{body}"; 'github': X-Hub-Signature-256 over the body.
    signature_type   text CHECK (signature_type IN ('standard-webhooks', 'github')),
    -- Kept as given because computing the HMAC needs it; never shown by the API after it is set.
    signature_secret text CHECK ((signature_type IS NULL) = (signature_secret IS NULL)),
    tools           text NOT NULL DEFAULT '[]' CHECK (tools::json IS NOT NULL),
                                                   -- [{type: http_request | read_webpage | notify, …}]; never a key
    max_steps       integer NOT NULL DEFAULT 8 CHECK (max_steps BETWEEN 1 AND 50),
                                                   -- model turns per run
    json_schema     text CHECK (json_schema IS NULL OR json_schema::json IS NOT NULL),
                                                   -- the answer's shape; NULL: free text
    callback_url    text,                          -- final results are POSTed here; NULL: no callbacks
    callback_secret text NOT NULL,                 -- whsec_<base64>: signs the callbacks; shown to admins only
    mcp_servers     text NOT NULL DEFAULT '[]' CHECK (mcp_servers::json IS NOT NULL),
                                                   -- [{name, command | url, …}]; never a secret (env_from, headers_env)
    knowledge_top_k integer NOT NULL DEFAULT 4 CHECK (knowledge_top_k BETWEEN 0 AND 20)
                                                   -- chunks of its sources put in each run's prompt; 0: none
);

CREATE TABLE tasks (
    id            text COLLATE "C" PRIMARY KEY,
    -- SET NULL keeps a deleted agent's finished results readable by task id.
    agent_id      text COLLATE "C" REFERENCES agents (id) ON DELETE SET NULL,
    -- PENDING: acknowledged, waiting for a worker (run_after says from when).
    -- STARTED: a worker is running it; attempts counts this run.
    -- RETRY:   the last attempt failed transiently; waits until run_after.
    -- SUCCESS, FAILURE: final; result is set and never changes again.
    status        text NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE')),
    payload       text NOT NULL CHECK (payload::json IS NOT NULL),  -- as accepted, byte for byte
    result        text CHECK (result IS NULL OR result::json IS NOT NULL),
    last_error    text CHECK (last_error IS NULL OR last_error::json IS NOT NULL),
                                                   -- the failed attempt behind a RETRY
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL CHECK (max_attempts >= 1),  -- the agent's, when the task was accepted
    run_after     double precision NOT NULL,       -- not claimed before this time
    created_at    double precision NOT NULL,
    started_at    double precision,
    finished_at   double precision,
    -- What a list of tasks shows of a result over 2 KiB (tasks/store.py list_preview); NULL
    -- for a smaller one, which a list shows whole.
    result_preview text CHECK (result_preview IS NULL OR result_preview::json IS NOT NULL),
    CHECK ((status IN ('SUCCESS', 'FAILURE')) = (result IS NOT NULL))
);

-- The claim query: runnable tasks in (run_after, id) order. Partial, so it holds only the queue.
CREATE INDEX tasks_queue ON tasks (run_after, id) WHERE status IN ('PENDING', 'RETRY');
-- Per-agent concurrency: how many of an agent's tasks are running.
CREATE INDEX tasks_running ON tasks (agent_id) WHERE status = 'STARTED';
-- Admin listing, newest first, optionally for one agent.
CREATE INDEX tasks_by_agent ON tasks (agent_id, id);
-- Admin listing filtered by status, and count_by_status (an index-only scan).
CREATE INDEX tasks_by_status ON tasks (status, id);
-- Retention: the oldest finished tasks first.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE status IN ('SUCCESS', 'FAILURE');

-- Idempotency keys (Idempotency-Key, webhook-id or X-GitHub-Delivery) an agent saw in the last
-- 24 hours: a request repeating one gets the task the first one made, not a new one.
CREATE TABLE idempotency_keys (
    agent_id    text COLLATE "C" NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key         text NOT NULL,
    body_sha256 bytea NOT NULL,                    -- SHA-256 of the raw body (of a GET: its query string)
    task_id     text COLLATE "C" NOT NULL,         -- no reference: the key may outlive a short HOOKD_RESULT_TTL_DAYS
    created_at  double precision NOT NULL,
    PRIMARY KEY (agent_id, key)
);

-- Retention: the oldest keys first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- The tool-call journal: each tool call that succeeded in a run of a task, committed as soon
-- as it succeeded. A later attempt of the task that makes the same call at the same step
-- (step, tool and arguments as canonical JSON) replays the output instead of calling again.
-- Deleted with its task.
CREATE TABLE tool_calls (
    task_id          text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step             integer NOT NULL,             -- the model turn that asked for the call, from 1
    tool             text NOT NULL,
    arguments        text NOT NULL,                -- canonical JSON: sorted keys, no spaces
    -- The key holds the arguments' hash: a B-tree entry cannot hold more than about 2.7 kB.
    arguments_sha256 bytea NOT NULL,
    -- What the model was given, in UTF-8. bytea, not text: a tool's output (a web page, an
    -- HTTP body) may hold NUL characters, which PostgreSQL's text cannot.
    output           bytea NOT NULL,
    created_at       double precision NOT NULL,
    PRIMARY KEY (task_id, step, tool, arguments_sha256)
);

-- Callbacks: one row per final result to POST to an agent's callback_url, inserted in the
-- transaction that stores the result, so a crash cannot lose it (tasks/callbacks.py sends them).
CREATE TABLE deliveries (
    id               text COLLATE "C" PRIMARY KEY, -- UUIDv7, sent as webhook-id: the same on every attempt
    task_id          text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    -- Whose callback_secret signs it; SET NULL when the agent is deleted (the delivery then fails).
    agent_id         text COLLATE "C" REFERENCES agents (id) ON DELETE SET NULL,
    url              text NOT NULL,                -- the agent's callback_url when the task ended
    -- pending:   waiting for its next attempt at next_attempt_at.
    -- delivered: the receiver answered 2xx (delivered_at).
    -- failed:    given up: 410 Gone, a refused address, no agent, or out of attempts (last_error).
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  double precision,
    last_attempt_at  double precision,
    last_status_code integer,                      -- the receiver's last HTTP status; NULL if none answered
    last_error       text,                         -- why the last attempt did not deliver, for a human
    created_at       double precision NOT NULL,
    delivered_at     double precision,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);

-- The delivery loop: pending deliveries by when they are due.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- A task's deliveries (admin API), and retention's cascade from tasks.
CREATE INDEX deliveries_by_task ON deliveries (task_id);
-- The cascade (SET NULL) when an agent is deleted.
CREATE INDEX deliveries_by_agent ON deliveries (agent_id);

-- Knowledge: documents uploaded to an agent, cut into chunks (agents/knowledge.py), searched
-- with PostgreSQL's full-text search before each run.
CREATE TABLE sources (
    id         text COLLATE "C" PRIMARY KEY,
    agent_id   text COLLATE "C" NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name       text NOT NULL,                      -- shown to the model beside each chunk
    format     text NOT NULL CHECK (format IN ('text', 'markdown', 'html')),
    bytes      integer NOT NULL,                   -- the uploaded text's size in UTF-8
    chunks     integer NOT NULL,
    created_at double precision NOT NULL
);
-- An agent's sources (listing, the cascade when it is deleted, "has it any?" before a run).
CREATE INDEX sources_by_agent ON sources (agent_id, id);

-- How chunks are cut into words: like SQLite's unicode61 with remove_diacritics 2 — lower
-- case, accents folded ("Zoë" finds "zoe"), no stop words, no stemming (which suits English
-- only). unaccent is a contrib extension, trusted since PostgreSQL 13: the database's owner
-- can create it.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION hookd_words (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION hookd_words
    ALTER MAPPING FOR word, hword, hword_part WITH unaccent, simple;

-- "Any of these words": the OR of the terms' queries (the || of tsquery, as an aggregate).
CREATE AGGREGATE hookd_any_words (tsquery) (SFUNC = tsquery_or, STYPE = tsquery);

CREATE TABLE chunks (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order
    source_id text COLLATE "C" NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    agent_id  text COLLATE "C" NOT NULL,           -- its source's; goes with the source
    nth       integer NOT NULL,                    -- the chunk's place in its source, from 0
    body      text NOT NULL,
    words     tsvector GENERATED ALWAYS AS (to_tsvector('hookd_words', body)) STORED
);
-- Deleting a source deletes its chunks through this index.
CREATE INDEX chunks_by_source ON chunks (source_id);
-- The full-text index. One agent's search reads its own chunks' entries only: the agent is a
-- key of the same GIN index (btree_gin, a contrib extension trusted since PostgreSQL 13), as
-- SQLite's search reads only the agent's rowid range of its FTS5 index.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX chunks_words ON chunks USING gin (agent_id, words);

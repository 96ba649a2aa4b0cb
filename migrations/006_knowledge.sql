-- Knowledge: an agent's knowledge_top_k, and its sources, chunks and their FTS5 index.
ALTER TABLE agents ADD COLUMN knowledge_top_k INTEGER NOT NULL DEFAULT 4
    CHECK (knowledge_top_k BETWEEN 0 AND 20);

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

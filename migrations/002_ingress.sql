-- Trusted ingress: webhook signatures an agent can require, and idempotency keys.

ALTER TABLE agents ADD COLUMN signature_type TEXT
    CHECK (signature_type IN ('standard-webhooks', 'github'));
ALTER TABLE agents ADD COLUMN signature_secret TEXT
    CHECK ((signature_type IS NULL) = (signature_secret IS NULL));

CREATE TABLE idempotency_keys (
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,
    task_id     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

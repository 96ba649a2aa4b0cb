-- Runs are held under leases: the server running a task is its owner, and the task is its
-- until lease_expires_at, which the owner renews while the run goes on. A task STARTED by a
-- server that is gone (its lease expired, or, on SQLite, its owner no longer holds the file)
-- is taken over: queued again, or ended FAILURE "interrupted" on its last attempt.
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_expires_at REAL;

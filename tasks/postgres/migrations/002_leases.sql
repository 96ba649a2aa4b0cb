-- Several nodes share the database: a run is held under a lease (owner, lease_expires_at by
-- the database's clock) that its node renews, and every task change is a notification to
-- the other nodes. See schema.sql.
ALTER TABLE tasks ADD COLUMN owner text COLLATE "C";
ALTER TABLE tasks ADD COLUMN lease_expires_at double precision;

-- Every committed change of a task's status or attempt is a notification on hookd_tasks to
-- every node that listens (tasks/postgres/listen.py), whoever made it: "STATUS ATTEMPTS ID
-- AGENT_ID NODE", NODE being the maker's hookd.node setting ('-' outside a node: the CLI,
-- psql). A lease renewal changes neither, and notifies no one.
CREATE FUNCTION hookd_task_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hookd_tasks', concat_ws(' ', NEW.status, NEW.attempts, NEW.id,
        coalesce(NEW.agent_id, '-'), coalesce(nullif(current_setting('hookd.node', true), ''), '-')));
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION hookd_task_changed();
CREATE TRIGGER tasks_changed AFTER UPDATE OF status, attempts ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.attempts IS DISTINCT FROM NEW.attempts)
    EXECUTE FUNCTION hookd_task_changed();

"""The PostgreSQL backend: the store of tasks/store.py for several hookd nodes on one database.

Needs the `postgres` extra (`pip install 'hookd[postgres]'`, for asyncpg); only
tasks/backends.py imports this package, and only for a postgresql:// URL, so a SQLite install
never needs it. The SQL is here: schema.sql, migrations/, and the statements in the modules.
"""

from tasks.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

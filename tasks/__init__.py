"""Tasks: the store that keeps them (SQLite by default) and the worker pool that runs them."""

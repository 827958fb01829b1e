"""The store's contract suite: every behaviour on a real SQLite file and a real PostgreSQL (db_url)."""

"""The job path's statements as the databases receive them, one file each, generated.

``sqlite/<name>.sql`` and ``postgresql/<name>.sql`` hold the SQL that the Core statements of
``statements.py``, ``quota_sql.py`` and ``leases.py`` compile to, laid out one clause a line
with their bind names; each file's opening comment says what the statement does, which Python
builds and runs it, and the values of the binds the statement holds itself. They are here to
be read, and to show every change to a statement in review; nothing runs them. ``catalogue.py``
lists them; ``python -m queuelab.store.sql`` rewrites them, ``--check`` lists the stale ones;
tests/store/test_sql_golden.py fails while any is stale.
"""

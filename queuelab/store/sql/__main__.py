"""Rewrite the committed SQL files (``--check``: list the stale ones, exit 1 if any)."""

from queuelab.store.sql.generate import main

raise SystemExit(main())

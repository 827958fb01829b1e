"""The peers, side by side: huey on SQLite and pgqueuer on PostgreSQL, each with its own
default worker, against queuelab with its defaults, in the same sitting, every queue running
the same job body (:func:`~queuelab.bench.peers.body.append_line`). The peers are installed
by the ``bench`` extra; where one is missing its figures are skipped with the reason."""

"""For tests only: the door past the facade.

:class:`~queuelab.Queue` keeps its :class:`~queuelab.runtime.Runtime` private; a test that
drives the stores or the runtime directly (claim a lease, ack it, read a table) asks for it
here, so the one place outside the facade that reaches in is easy to find. The API, the lab,
the CLI and the bench never import this module (``tests/test_layering.py`` checks it); the
bench measures the store through :attr:`Queue.database <queuelab.Queue.database>`.
"""

from __future__ import annotations

from queuelab.queue import Queue
from queuelab.runtime import Runtime


def internals(q: Queue) -> Runtime:
    """``q``'s runtime: its settings, clock, tasks and stores over one database."""
    return q._runtime

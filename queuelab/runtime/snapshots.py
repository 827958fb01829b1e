"""A process pool's metrics: each child counts its own jobs (a
:class:`~queuelab.runtime.metrics.JobMetrics` of its own) and writes what it has counted to a
file of its own in a folder the parent made, once a second when something changed and when
it stops; the parent adds up every file when it is read (``GET /metrics``).

Why not prometheus_client's multiprocess mode: it must be configured by an environment
variable before prometheus_client is first imported in every process, which a pool started
by ``fork`` from a notebook cannot promise, and it would put prometheus_client (the api
extra) in every worker process. Here the children need nothing beyond the core.

A child that dies keeps its last file, so the pool's counters never go down; what it counted
after its last write (at most a second's worth, for a child killed by SIGKILL or stopped for
a job's timeout) is lost with it.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from queuelab.looper import Looper
from queuelab.runtime.metrics import JobMetrics, Snapshot

log = logging.getLogger("queuelab.metrics")

WRITE_EVERY_SECONDS = 1.0


class SnapshotWriter(Looper):
    """A child's loop: writes its counts to a file of its own in ``folder`` when they change
    (named by its pid and a random part: a pid may be reused by a later child)."""

    def __init__(self, metrics: JobMetrics, folder: str) -> None:
        super().__init__("queuelab-metrics", every=WRITE_EVERY_SECONDS)
        self.metrics = metrics
        self.path = Path(folder) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._written: object = None

    def tick(self, now: float, mono: float) -> None:
        data = self.metrics.snapshot().to_json()
        if data != self._written:
            write(self.path, data)
            self._written = data

    def stop(self, timeout: float | None = 5.0) -> None:
        super().stop(timeout)
        self.run_tick()  # the last counts


def write(path: Path, data: object) -> None:
    """Replace ``path`` at once (a reader never sees half a file)."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def read_folder(folder: str) -> Snapshot:
    """Every child's last counts, added up."""
    total = Snapshot()
    for path in sorted(Path(folder).glob("*.json")):
        try:
            total.add(Snapshot.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # one bad file must not hide the others
            log.warning("could not read the metrics of worker process file %s: %s", path.name, exc)
    return total

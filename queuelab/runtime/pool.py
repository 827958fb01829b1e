"""Worker pools: threads in this process, or supervised worker processes.

A process pool's children each run a one-slot :class:`~queuelab.runtime.worker.Worker`. The
:class:`~queuelab.runtime.supervisor.Supervisor` restarts a child that dies (a crash, or a job killed
for its timeout), and on stop the pool sends SIGTERM so each child finishes or releases its
job and exits 0.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Literal

from queuelab import bounds, logs
from queuelab.bounds import Prefetch
from queuelab.config import Settings
from queuelab.errors import InvalidArgument
from queuelab.runtime.context import Runtime
from queuelab.runtime.metrics import JobMetrics
from queuelab.runtime.scheduler import define_all
from queuelab.runtime.snapshots import SnapshotWriter, read_folder
from queuelab.runtime.supervisor import Supervisor, terminate
from queuelab.runtime.worker import Worker
from queuelab.tasks import Task

log = logging.getLogger("queuelab.pool")

Mode = Literal["thread", "process"]
MODES = ("thread", "process")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a worker process needs to rebuild its runtime (picklable for spawn)."""

    settings: Settings
    task_refs: tuple[tuple[str, str, str], ...]  # (task name, module, qualified name)
    queues: tuple[str, ...] | None
    log_level: int = logging.INFO
    log_format: str = "text"
    metrics_folder: str | None = None  # where the child writes its counts (queuelab.runtime.snapshots)


def check_pool_args(
    concurrency: object,
    mode: object,
    queues: object = None,
    start_method: object = None,
    prefetch: object = None,
    async_concurrency: object = None,
) -> tuple[str, ...] | None:
    """Check a pool's arguments; return the queue names as a tuple (None: all queues)."""
    bounds.whole("concurrency", concurrency, 1, bounds.MAX_CONCURRENCY)
    bounds.prefetch_or_none(prefetch)
    if async_concurrency is not None:
        bounds.whole("async_concurrency", async_concurrency, 1, bounds.MAX_ASYNC_CONCURRENCY)
    bounds.one_of("mode", mode, MODES)
    if start_method is not None:
        bounds.one_of("start_method", start_method, mp.get_all_start_methods())
    if queues is None:
        return None
    if isinstance(queues, str) or not isinstance(queues, Sequence) or not queues:
        raise InvalidArgument(f"queues must be a non-empty list of queue names (or None for all), got {queues!r}")
    from queuelab.submission import check_queue

    return tuple(check_queue(name) for name in queues)


class Pool:
    """Common surface: ``start``, ``stop``, ``wait``, ``resize``, and use as a context manager."""

    def start(self) -> Pool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        raise NotImplementedError

    @property
    def size(self) -> int:
        raise NotImplementedError

    def resize(self, n: int) -> None:
        """Run ``n`` workers from now on: more start at once; a removed one finishes its
        job, or stops claiming. Nothing is lost and no attempt is spent."""
        raise NotImplementedError

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class ThreadPool(Pool):
    """One worker with ``concurrency`` slot threads (and an event loop for async jobs, up to
    ``async_concurrency`` at once; None: the setting), run in the background of this process."""

    def __init__(
        self,
        runtime: Runtime,
        concurrency: int,
        queues: Sequence[str] | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> None:
        # This process lives on after stop(): a job still running past the grace period is
        # not released (its thread would run on beside a new attempt); its lease expires.
        # (An async job's coroutine is cancelled, and released.)
        self.worker = Worker(
            runtime,
            concurrency=concurrency,
            queues=queues,
            mode="thread",
            release_on_stop=False,
            prefetch=prefetch,
            async_concurrency=async_concurrency,
        )
        self._thread = threading.Thread(target=self.worker.run, name="queuelab-worker", daemon=True)

    @property
    def size(self) -> int:
        return self.worker.concurrency

    def start(self) -> ThreadPool:
        self._thread.start()
        return self

    def resize(self, n: int) -> None:
        """``n`` slot threads from now on (see :meth:`Worker.resize <queuelab.runtime.worker.Worker.resize>`)."""
        check_pool_args(n, "thread")
        self.worker.resize(n)

    def stop(self) -> None:
        self.worker.stop()
        self._thread.join()

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.2)


class ProcessPool(Pool):
    def __init__(
        self,
        runtime: Runtime,
        processes: int,
        queues: Sequence[str] | None = None,
        start_method: str | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> None:
        self.runtime = runtime
        # What each child runs with: the runtime's settings, with this pool's prefetch and
        # async concurrency (each child runs its own event loop).
        changes = {"prefetch": prefetch, "async_concurrency": async_concurrency}
        given = {name: value for name, value in changes.items() if value is not None}
        self._settings = runtime.settings.with_changes(**given) if given else runtime.settings
        self.target = processes
        self.queues = tuple(queues) if queues else None
        self._custom = [t for t in runtime.tasks if t.name != "simulate"]
        self._ctx: Any = mp.get_context(start_method or _start_method(self._custom))
        self._stopping = threading.Event()
        self._started = False
        self._metrics_folder: str | None = None
        self.supervisor = Supervisor(self._spawn)

    @property
    def size(self) -> int:
        return self.target

    @property
    def restarts(self) -> int:
        """Children that died and were replaced (or wait to be)."""
        return self.supervisor.restarts

    def pids(self) -> list[int]:
        return self.supervisor.pids()

    def start(self) -> ProcessPool:
        _ = self.runtime.db  # create the schema once, before the children race to do it
        define_all(self.runtime)  # the children know the tasks, not the @q.periodic definitions
        self._count_children()
        self._started = True
        self.supervisor.resize(self.target, time.monotonic())
        self.supervisor.start()
        return self

    def _count_children(self) -> None:
        """With metrics on here, each child counts its jobs and this process adds them up
        (see :mod:`queuelab.runtime.snapshots`); the folder lives as long as this process."""
        metrics = self.runtime.metrics
        if metrics is None or self._metrics_folder is not None:
            return
        folder = self._metrics_folder = tempfile.mkdtemp(prefix="queuelab-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        metrics.add_source(lambda: read_folder(folder))

    def resize(self, n: int) -> None:
        """``n`` worker processes from now on (before :meth:`start`: the pool starts with
        ``n``); a removed one gets SIGTERM and finishes or releases its job (no attempt spent)."""
        check_pool_args(n, "process")
        self.target = n
        if self._started:
            self.supervisor.resize(n, time.monotonic())

    def stop(self) -> None:
        self._stopping.set()
        self.supervisor.stop()  # from here on no child is restarted, and none started by resize()
        children = self.supervisor.children()
        for child in children:
            terminate(child)
        deadline = time.monotonic() + self.runtime.settings.shutdown_grace_seconds + 10.0
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                log.error("worker process %s did not stop in time; killing it", child.pid)
                child.kill()
                child.join()

    def request_stop(self) -> None:
        """Make :meth:`wait` return (safe to call from a signal handler)."""
        self._stopping.set()

    def wait(self) -> None:
        while not self._stopping.is_set():
            self._stopping.wait(0.2)

    def _spawn(self) -> BaseProcess:
        """Start one worker process (the supervisor's ``spawn``)."""
        if self._ctx.get_start_method() == "fork":
            args: tuple[object, ...] = (None, self._settings, tuple(self._custom), self.queues, self._metrics_folder)
        else:
            spec = ChildSpec(
                self._settings,
                tuple(_ref(t) for t in self._custom),
                self.queues,
                logging.getLogger().getEffectiveLevel(),
                logs.current()[1],
                self._metrics_folder,
            )
            args = (spec, None, None, None, None)
        child: BaseProcess = self._ctx.Process(target=_child_main, args=args, name="queuelab-worker", daemon=False)
        child.start()
        return child


def on_signals(handler: Callable[[], None], *signals: signal.Signals) -> None:
    """Call ``handler`` on a fresh thread when a signal arrives. Never in the handler
    itself: the main thread may hold the lock of the very Event the handler would set
    (inside ``Event.clear()``), and a non-reentrant lock taken twice hangs forever."""
    for sig in signals:
        signal.signal(sig, lambda *_: threading.Thread(target=handler, name="queuelab-signal", daemon=True).start())


def _ref(task: Task) -> tuple[str, str, str]:
    return (task.name, *task.ref)


def _start_method(tasks: Sequence[Task]) -> str:
    """``spawn`` (a clean interpreter, no inherited locks or threads) unless a task was
    defined interactively (a notebook, a REPL), where only ``fork`` can carry it over."""
    main = sys.modules.get("__main__")
    interactive = main is None or not hasattr(main, "__file__")
    if interactive and any(t.fn.__module__ == "__main__" for t in tasks):
        return "fork"
    return "spawn"


def load_task(name: str, module: str, qualname: str) -> Task:
    target: object = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, Task):
        raise InvalidArgument(
            f"task {name!r}: {module}.{qualname} is not a queuelab Task; define tasks at module level with @q.task"
        )
    return target


def _child_main(
    spec: ChildSpec | None,
    settings: Settings | None,
    tasks: tuple[Task, ...] | None,
    queues: tuple[str, ...] | None,
    metrics_folder: str | None = None,
) -> None:
    if spec is not None:
        settings, queues, metrics_folder = spec.settings, spec.queues, spec.metrics_folder
        tasks = tuple(load_task(*ref) for ref in spec.task_refs)
    assert settings is not None
    assert tasks is not None
    _configure_child_logging(spec)
    runtime = Runtime(settings)
    for task in tasks:
        runtime.tasks.add(task)
    writer = None
    if metrics_folder is not None:
        runtime.metrics = JobMetrics()
        writer = SnapshotWriter(runtime.metrics, metrics_folder).start()
    worker = Worker(
        runtime, concurrency=1, queues=queues, mode="process", exit_on_timeout=True, parent_pid=os.getppid()
    )
    # Ctrl-C reaches the whole process group; the supervisor coordinates the stop (one
    # SIGTERM per child), so a child ignores SIGINT: two signals would skip the grace period.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    on_signals(worker.stop, signal.SIGTERM)
    worker.run()
    if writer is not None:
        writer.stop()
    runtime.close()


def _configure_child_logging(spec: ChildSpec | None) -> None:
    """A spawned worker process logs as its parent does (a forked one inherits it)."""
    if spec is not None and not logging.getLogger().handlers:
        logs.configure(logging.getLevelName(spec.log_level).lower(), spec.log_format)

"""The HTTP API and dashboard served from inside a Python process (a Jupyter kernel, a
script): ``serve(q)`` starts uvicorn in a thread of its own and returns a handle with the
server's ``url`` (a free port unless ``port=`` says) and ``stop()``.

    >>> from queuelab import Queue
    >>> from queuelab.api import serve
    >>> api = serve(Queue("sqlite:///lab.db"))      # doctest: +SKIP
    >>> api.url                                      # doctest: +SKIP
    'http://127.0.0.1:41233'
    >>> api.stop()                                   # doctest: +SKIP

``python -m queuelab.api`` is the way to run it as a service; this is the way to look at a
queue the notebook is driving, on the same ``Queue`` object.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from queuelab.api.app import create_app
from queuelab.api.auth import TokenBook, is_loopback
from queuelab.errors import InvalidArgument, QueuelabError
from queuelab.queue import Queue

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


class ServerError(QueuelabError):
    """The API server could not start (the port is taken, the address cannot be bound)."""


@dataclass(eq=False)
class RunningApi:
    """A running server: its base ``url`` (the dashboard is at ``url + "/"``) and ``stop()``."""

    url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving (requests in flight finish) and wait for the thread to end. Idempotent."""
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            raise ServerError(f"the API server at {self.url} did not stop within {STOP_TIMEOUT_SECONDS:g}s")

    def __enter__(self) -> RunningApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_html_(self) -> str:  # a link in a notebook
        state = "running" if self.running else "stopped"
        return f'queuelab API {state}: <a href="{self.url}/" target="_blank">{self.url}/</a> (dashboard)'


def serve(
    queue: Queue, *, host: str = "127.0.0.1", port: int = 0, tokens: TokenBook | None = None, log_level: str = "warning"
) -> RunningApi:
    """Serve ``queue``'s API and dashboard from a background thread; return once it answers.
    ``port=0`` takes a free port (read it from ``.url``). As with ``python -m queuelab.api``,
    a server without tokens listens on loopback only."""
    book = tokens or TokenBook({})
    if not book.enabled and not is_loopback(host):
        raise InvalidArgument(f"refusing to serve on {host} with no API tokens: pass tokens=, or bind to 127.0.0.1")
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"port must be between 0 and 65535, got {port!r}")
    config = uvicorn.Config(create_app(queue, book), host=host, port=port, log_level=log_level, access_log=False)
    server = uvicorn.Server(config)  # in a thread that is not the main one, it leaves signals alone

    def run() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind (logged); see below
            server.run()

    thread = threading.Thread(target=run, name=f"queuelab-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        raise ServerError(f"the API server could not start on {host}:{port} (is the port in use?)")
    bound = server.servers[0].sockets[0].getsockname()
    return RunningApi(url=f"http://{host}:{bound[1]}", _server=server, _thread=thread)

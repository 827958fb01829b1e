"""``queuelab.api.serve``: the API and dashboard started from Python (a notebook's kernel),
answering real HTTP, then stopped with no thread and no listening port left behind."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from queuelab import InvalidArgument, Queue
from queuelab.api import ServerError, serve


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_serve_from_python_answers_http_and_stops_cleanly(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        api = serve(q)
        try:
            assert api.running
            submitted = httpx.post(f"{api.url}/api/submit/", json={"user_id": "nb", "payload": {"duration": 0}})
            assert submitted.status_code == 201
            job_id = submitted.json()["job_id"]
            assert q.get(job_id).user_id == "nb"  # the same queue the notebook holds
            assert httpx.get(f"{api.url}/").status_code == 200  # the dashboard
            assert httpx.get(f"{api.url}/static/dashboard.js").status_code == 200
            assert 'href="http://127.0.0.1:' in api._repr_html_()
        finally:
            api.stop()
        port = int(api.url.rsplit(":", 1)[1])
        assert not api.running
        assert threads_named("queuelab-api") == []
        with socket.socket() as probe:  # the port is free again: nothing listens on it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{api.url}/healthz", timeout=2)
        api.stop()  # twice: nothing happens


def test_a_taken_port_or_an_open_address_is_a_clear_error(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q, serve(q) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(ServerError, match=rf"could not start on 127\.0\.0\.1:{port}"):
            serve(q, port=port)
        with pytest.raises(InvalidArgument, match=r"refusing to serve on 0\.0\.0\.0 with no API tokens"):
            serve(q, host="0.0.0.0")
    assert threads_named("queuelab-api") == []

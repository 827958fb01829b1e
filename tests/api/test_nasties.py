"""Hand-made hostile requests: deeply nested JSON, huge strings, invalid UTF-8, NaN and
Infinity, wrong content types, and a 100 MB body that must be refused before it is read.
Each gets a 4xx with a JSON error; nothing is stored; the server lives on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from queuelab import Queue
from queuelab.api import create_app
from tests.support.apiserver import api_server

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with Queue(sqlite_url) as q, TestClient(create_app(q)) as c:
        yield c


def _nested(depth: int) -> bytes:
    return b'{"user_id": "a", "payload": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (_nested(100_000), JSON, 400, "malformed_json"),  # deeper than any parser should follow
        (_nested(2_000), JSON, 400, "malformed_json"),
        (b'{"user_id": "a", "payload": {"x": NaN}}', JSON, 400, "bad_request"),
        (b'{"user_id": "a", "payload": {"x": Infinity}}', JSON, 400, "bad_request"),
        (b'{"user_id": "a", "payload": {"x": -Infinity}}', JSON, 400, "bad_request"),
        (b'{"user_id": "a\xff\xfe", "payload": {}}', JSON, 400, "malformed_json"),  # invalid UTF-8
        (b'{"user_id": "\\ud800", "payload": {}}', JSON, 400, "bad_request"),  # a lone surrogate
        (b'{"user_id": "' + b"u" * 1_000_000 + b'"}', JSON, 400, "bad_request"),  # under the body limit
        (b'{"user_id": "' + b"u" * 3_000_000 + b'"}', JSON, 413, "too_large"),  # over it
        (b'{"user_id": "a", "payload": {"s": "' + b"x" * 300_000 + b'"}}', JSON, 413, "payload_too_large"),
        (b"user_id=a", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b'{"user_id": "a"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"", JSON, 400, "malformed_json"),
        (b"[]", JSON, 422, "invalid_field"),
        (b'"just a string"', JSON, 422, "invalid_field"),
        (b'{"user_id": "a", "payload": {"x": 1}, "user_id": "b"}', JSON, 200, None),  # last key wins, as in JSON.parse
    ],
    ids=[
        "nested-100k",
        "nested-2k",
        "nan",
        "infinity",
        "minus-infinity",
        "invalid-utf8",
        "lone-surrogate",
        "long-user-id",
        "huge-body",
        "huge-payload",
        "form",
        "text-plain",
        "empty",
        "array",
        "string",
        "duplicate-keys",
    ],
)
def test_hostile_bodies_get_a_json_4xx_and_store_nothing(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, error: str | None
) -> None:
    response = client.post("/api/submit/", content=body, headers=headers)
    if error is None:
        assert response.status_code in (200, 201), response.text
        return
    assert (response.status_code, response.json().get("error")) == (status, error), response.text[:300]
    assert response.json()["message"]
    assert client.get("/api/jobs/").json()["jobs"] == []


def test_a_100_mb_body_is_refused_before_it_is_read(sqlite_url: str, tmp_path: Path) -> None:
    """A client declares 100 MB and starts sending: the server answers 413 at once, and its
    memory does not grow by anything like the body."""
    with api_server(sqlite_url, tmp_path / "api.log") as base:
        host, port = base.removeprefix("http://").split(":")
        pid = _server_pid(int(port))
        before = _rss_kb(pid)
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            head = [
                "POST /api/submit/ HTTP/1.1",
                "Host: x",
                "Content-Type: application/json",
                f"Content-Length: {100 * 1024 * 1024}",
            ]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            try:
                for _ in range(64):  # up to 4 MB more; the answer comes long before the end
                    conn.sendall(b"x" * 65536)
                    sent += 65536
            except OSError:
                pass  # the server closed the connection on us: that is the point
            answer = conn.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert '"too_large"' in answer
        assert _rss_kb(pid) - before < 20_000  # not the 100 MB, not even the 4 MB sent
        assert sent < 100 * 1024 * 1024


def _server_pid(port: int) -> int:
    for conn_line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = conn_line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inode = fields[9]
            break
    else:
        raise AssertionError(f"nothing listens on port {port}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [str(p.readlink()) for p in (proc / "fd").iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return int(proc.name)
    raise AssertionError(f"no process holds the socket on port {port}")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")

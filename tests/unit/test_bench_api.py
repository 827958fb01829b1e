"""The API bench's readings: wrk's report, and a process's CPU time from /proc."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("httpx")  # the bench extra

from queuelab.bench.api import cpu_seconds, parse_wrk
from queuelab.bench.results import BenchError

REPORT = """Running 5s test @ http://127.0.0.1:8000/api/submit/
  2 threads and 16 connections
  Latency Distribution
     50%    8.22ms
     75%   10.01ms
     90%   14.30ms
     99%   32.23ms
  8331 requests in 5.00s, 1.57MB read
Requests/sec:   1666.39
"""


def test_parse_wrk_reads_the_rate_and_the_percentiles_in_milliseconds() -> None:
    assert parse_wrk(REPORT) == {"rate": 1666.39, "p50_ms": 8.22, "p99_ms": 32.23}
    assert parse_wrk(REPORT.replace("32.23ms", "1.20s"))["p99_ms"] == 1200.0


def test_parse_wrk_refuses_a_run_with_error_answers() -> None:
    with pytest.raises(BenchError, match="error answers"):
        parse_wrk(REPORT + "  Non-2xx or 3xx responses: 12\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_cpu_seconds_reads_a_live_process_and_is_none_for_a_gone_one() -> None:
    spent = cpu_seconds(os.getpid())
    assert spent is not None
    assert spent > 0  # this interpreter has run
    assert cpu_seconds(2**22 + 1) is None  # above Linux's largest pid

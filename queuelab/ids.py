"""Job ids: time-ordered UUIDs (version 7, RFC 9562), as text.

A job's id is the primary key of the jobs table, and every submit inserts one into its index.
Random (version 4) ids land on a random leaf of that index: a batch of 1,000 touched up to
1,000 pages, each written again (to SQLite's WAL, to PostgreSQL's WAL as a full page after
a checkpoint) and each a likely cache miss once the index outgrows memory. Ids that grow
with time all land on the index's last leaf, as a serial number would, while staying
unique across processes and machines without asking the database for them.

The layout: 48 bits of Unix time in milliseconds, the version (7), a 12-bit counter, the
variant (``10``) and 62 random bits. The counter makes the ids of one process strictly
increasing: it starts at a random value below 1,024 when the millisecond changes and counts
up within it; past 4,095 the id borrows the next millisecond (RFC 9562, section 6.2,
method 1), and a clock that steps back is not followed back. Ids of different processes
made in the same millisecond interleave, kept apart by their random bits.

What an id tells: the millisecond it was made, as ``created_at`` already does. The text
form sorts as the number does (fixed width, lower-case hex), so "newest first" by id agrees
with the order a process submitted in.
"""

from __future__ import annotations

import os
import threading
import time

_COUNTER_TOP = 0xFFF  # 12 bits
_COUNTER_START = 0x3FF  # a fresh millisecond's counter starts below this: room for 3,072 more
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # top bits 10

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_ids(count: int) -> list[str]:
    """``count`` new job ids, increasing, from one read of the clock and one of the system's
    random source (``uuid.uuid4`` reads it once per id: 2.7 µs an id)."""
    global _last_ms, _counter
    digits = os.urandom(8 * count + 2).hex()  # 16 digits an id, then 4 for a fresh counter
    out = []
    with _lock:
        now = _milliseconds()
        if now > _last_ms:
            ms, counter = now, int(digits[-4:], 16) & _COUNTER_START
        else:  # the same millisecond, or the clock stepped back
            ms, counter = _last_ms, _counter + 1
        stamp = f"{ms:012x}"
        for start in range(0, 16 * count, 16):
            if counter > _COUNTER_TOP:
                ms, counter = ms + 1, 0
                stamp = f"{ms:012x}"
            rand = digits[start : start + 16]
            out.append(f"{stamp[:8]}-{stamp[8:]}-7{counter:03x}-{_VARIANT[rand[0]]}{rand[1:4]}-{rand[4:]}")
            counter += 1
        _last_ms, _counter = ms, counter - 1
    return out


def _milliseconds() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """One new job id (see :func:`new_ids`)."""
    return new_ids(1)[0]

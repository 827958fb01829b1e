import sqlite3
import tempfile
import time

from queuelab import Queue

if __name__ == "__main__":
    d = tempfile.mkdtemp()
    q = Queue(f"sqlite:///{d}/q.db")
    q.open()
    db = q.database
    raw = sqlite3.connect(f"{d}/q.db", isolation_level=None)
    n = 20000
    for _r in range(3):
        c = time.process_time()
        for _ in range(n):
            with db.write() as conn:
                pass
        a = (time.process_time() - c) / n * 1e6
        c = time.process_time()
        for _ in range(n):
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("COMMIT")
        b = (time.process_time() - c) / n * 1e6
        c = time.process_time()
        for _ in range(n):
            with db.engine.connect() as conn:
                pass
        e = (time.process_time() - c) / n * 1e6
        print(f"db.write() empty {a:.1f} µs; raw BEGIN IMMEDIATE/COMMIT {b:.1f} µs; engine.connect() alone {e:.1f} µs")

"""The long-retention churn run of benchmarks/README.md (issue 20), one variant at a time:

    PYTHONPATH=. python benchmarks/results/issue20-churn-history/run.py \
        postgresql+psycopg://postgres@127.0.0.1:5433/test 1000000 90000 300 "postgres defaults" out.json

(URL, kept jobs, jobs pushed through, jobs/s, variant: "postgres defaults" or queuelab, output).
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

from queuelab.bench.churn import run_history_churn

url, variant, out = sys.argv[1], sys.argv[5], sys.argv[6]
history, n, rate = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
t = time.monotonic()
ws = run_history_churn(url, history, n, rate, variant)
for w in ws:
    print(
        f"{w.jobs:>7} {w.seconds:6.1f}s claim {w.claim_p50_ms:6.2f}ms pages {w.claim_buffers:6.0f} "
        f"dead {w.dead_tuples:>9.0f} table {w.table_mb:7.1f} idx {w.index_mb:7.1f} "
        f"hist {w.history_mb:6.1f} vac {w.vacuums:4.1f}",
        flush=True,
    )
print("total", time.monotonic() - t)
Path(out).write_text(json.dumps([dataclasses.asdict(w) for w in ws]))

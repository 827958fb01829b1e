import csv, statistics, sys
from collections import defaultdict
runs = sys.argv[1:]
vals = defaultdict(list); units = {}
order = []
for r in runs:
    for row in csv.DictReader(open(f"{r}/bench.csv")):
        key = (row["database"], row["scenario"], row["case"], row["metric"])
        if key not in vals: order.append(key)
        try: vals[key].append(float(row["value"]))
        except ValueError: continue
        units[key] = row["unit"]
for key in order:
    v = vals[key]
    if not v: continue
    med = statistics.median(v)
    print(f"{key[0]:10} | {key[1]:8} | {key[2][:70]:70} | {key[3]:10} | {med:12,.2f} {units[key]} | " + ", ".join(f"{x:,.2f}" for x in v))

"""Write an N-row CSV archive by cycling the sample archive (ids made unique), for throughput and
memory benchmarks of `replyqa score`. Usage: python experiments/benchmarks/make_archive.py N OUT.csv"""

import sys

import pandas as pd

rows, output = int(sys.argv[1]), sys.argv[2]
sample = pd.read_csv("data/samples/archive.csv", dtype=str, keep_default_na=False)
repeated = pd.concat([sample] * (rows // len(sample) + 1), ignore_index=True).iloc[:rows]
repeated["id"] = [f"b-{i:08d}" for i in range(rows)]
repeated.to_csv(output, index=False)

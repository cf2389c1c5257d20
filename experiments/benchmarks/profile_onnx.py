"""Where an ONNX model's time goes: ONNX Runtime's own profile (kernel time per operator type) of
two passes over the split's validation + test replies, in the Scorer's length batches, 2 threads.

    python experiments/benchmarks/profile_onnx.py models/default/onnx/model.int8.onnx models/default
"""

from __future__ import annotations

import collections
import json
import sys

import onnxruntime as ort

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer

graph, model = sys.argv[1], sys.argv[2]
scorer = Scorer.load(model)
data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
batches = [batch for _, batch in scorer.model_batches(list(data["text"]), list(data["context"]))]
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.enable_profiling = True
options.profile_file_prefix = "/tmp/replyqa_ort_profile"
session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
names = [i.name for i in session.get_inputs()]
for _ in range(2):
    for batch in batches:
        session.run(None, {name: batch[name] for name in names})
events = json.load(open(session.end_profiling()))
by_op: collections.Counter = collections.Counter()
for event in events:
    if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
        by_op[event["args"]["op_name"]] += event["dur"]
total = sum(by_op.values())
replies = 2 * len(data)
print(f"kernel time {total / 1000:.0f} ms for {replies} replies: {total / 1000 / replies:.3f} ms a reply")
for op, microseconds in by_op.most_common(12):
    print(f"{op:30s} {100 * microseconds / total:5.1f}%")

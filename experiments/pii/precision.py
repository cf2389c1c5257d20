"""How often a PII finding in a reply coincides with a privacy_risk label, per kind of finding,
on every labelled record (training corpus and held-out writers).

    .venv/bin/python experiments/pii/precision.py > experiments/pii/precision.json
"""

import json
from collections import Counter

from ml.data.pii import KINDS, find_pii
from ml.data.records import expand_paths, load_records

records = load_records(expand_paths(["data/labelled", "data/heldout_writers"])).records
found, agree = Counter(), Counter()
for record in records:
    for kind in {f.kind + (":validated" if f.validated else "") for f in find_pii(record.text)}:
        found[kind] += 1
        agree[kind] += record.labels.privacy_risk
any_finding = [r for r in records if find_pii(r.text)]
positives = sum(r.labels.privacy_risk for r in records)
report = {
    "records": len(records),
    "privacy_risk_positives": positives,
    "records_with_a_finding": len(any_finding),
    "precision_any_finding": round(sum(r.labels.privacy_risk for r in any_finding) / max(len(any_finding), 1), 3),
    "recall_any_finding": round(sum(r.labels.privacy_risk for r in any_finding) / positives, 3),
    "per_kind": {
        kind: {
            "records": found[kind],
            "labelled_privacy_risk": agree[kind],
            "precision": round(agree[kind] / found[kind], 3),
        }
        for kind in sorted(found)
    },
    "kinds": list(KINDS),
}
print(json.dumps(report, ensure_ascii=False, indent=2))

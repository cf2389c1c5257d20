"""What new input shapes cost: the Scorer on random groups of n test replies (as the API's
micro-batches bring them), each list of groups scored twice. The first pass meets shapes the
runtime has not seen, the second the same shapes again. `--pad-multiple` overrides the backend's
width rounding (OpenVINO: 16, ONNX: 1) to show what it buys.

    python experiments/benchmarks/new_shapes.py --runtime auto --pad-multiple 1
    python experiments/benchmarks/new_shapes.py --turns 10   # one length-bucketed call, unpadded vs 16, in turns
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from ml.data.records import load_labelled
from ml.modeling.scorer import Scorer


def bucketed_turns(model: str, runtime: str, rounds: int) -> None:
    """Replies/s of one length-bucketed call on test + validation, widths unpadded and rounded to
    16 tokens, in turns, after one warm-up round each (so both meet known shapes)."""
    data = load_labelled(["data/split/test.jsonl", "data/split/validation.jsonl"])
    texts, contexts = list(data["text"]), list(data["context"])
    scorers = {multiple: Scorer.load(model, runtime=runtime) for multiple in (1, 16)}
    rates: dict[int, list[float]] = {multiple: [] for multiple in scorers}
    for multiple, scorer in scorers.items():
        scorer.backend.pad_multiple = multiple
        scorer.predict_proba(texts, contexts)
    for _ in range(rounds):
        for multiple, scorer in scorers.items():
            started = time.perf_counter()
            scorer.predict_proba(texts, contexts)
            rates[multiple].append(len(texts) / (time.perf_counter() - started))
    for multiple, values in rates.items():
        print(
            f"{scorers[multiple].runtime} pad_multiple={multiple}: median {statistics.median(values):.1f} replies/s"
            f" over {rounds} rounds ({', '.join(f'{v:.0f}' for v in values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--pad-multiple", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--turns", type=int, default=0, help="measure bucketed calls in turns instead")
    args = parser.parse_args()
    if args.turns:
        return bucketed_turns(args.model, args.runtime, args.turns)
    data = load_labelled(["data/split/test.jsonl"])
    texts, contexts = list(data["text"]), list(data["context"])
    scorer = Scorer.load(args.model, runtime=args.runtime)
    if args.pad_multiple:
        scorer.backend.pad_multiple = args.pad_multiple
    rng = random.Random(0)
    cells = []
    for n in args.sizes:
        groups = [rng.sample(range(len(texts)), n) for _ in range(max(40, 800 // n))]
        for attempt in ("first", "again"):
            started = time.perf_counter()
            for group in groups:
                scorer.predict_proba([texts[i] for i in group], [contexts[i] for i in group])
            ms = (time.perf_counter() - started) / len(groups) * 1000
            cells.append(f"n={n} {attempt} {ms:.1f} ms ({n / ms * 1000:.0f}/s)")
    print(scorer.runtime, f"pad_multiple={scorer.backend.pad_multiple}", " | ".join(cells))


if __name__ == "__main__":
    main()

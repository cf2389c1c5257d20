"""The rule of README.md applied to the four scoreboards (default and P; sealed set + data/ood, and data/ood_fresh).

python experiments/call_opening_audit/judge.py      # prints the table and the verdict
"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).parent
# data_volume's judge reads the same figures from the same scoreboards, and prints stack_distill's table
_spec = importlib.util.spec_from_file_location("data_volume_judge", HERE.parent / "data_volume" / "judge.py")
data_volume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data_volume)


def board(name: str) -> dict:
    import json

    return json.loads((HERE / name / "scoreboard.json").read_text(encoding="utf-8"))


def checks(default: dict[str, float], p: dict[str, float]) -> list[tuple[str, bool]]:
    result = [
        ("1 sealed macro-F1 >= default - 0.005", p["sealed macro-F1"] >= default["sealed macro-F1"] - 0.005),
        (
            "1 sealed R@P85 privacy_risk >= default",
            p["sealed R@P85 privacy_risk"] >= default["sealed R@P85 privacy_risk"],
        ),
        (
            "1 sealed R@P85 threatening >= default - 0.02",
            p["sealed R@P85 threatening"] >= default["sealed R@P85 threatening"] - 0.02,
        ),
    ]
    # parts 2 and 3 are data_volume's, word for word
    return result + [check for check in data_volume.checks(default, p) if not check[0].startswith("1 ")]


def main() -> None:
    default = data_volume.rows(board("scoreboard_default"), board("scoreboard_default_ood_fresh"))
    p = data_volume.rows(board("scoreboard"), board("scoreboard_ood_fresh"))
    data_volume.print_verdict("P", default, p, checks(default, p))


if __name__ == "__main__":
    main()

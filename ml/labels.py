"""The five labels of ../shared/LABELS.md, in the fixed order used by every model and file,
and the values the other record fields may take."""

from typing import Literal, get_args

Label = Literal["polite", "clear", "empathetic", "threatening", "privacy_risk"]
LABELS: tuple[str, ...] = get_args(Label)

Scenario = Literal["collection", "service", "complaint", "verification", "other"]
Channel = Literal["call", "chat"]
NoiseTag = Literal["typo", "homophone", "emoji", "halfwidth", "short", "long", "traditional", "english", "asr"]

SCENARIOS: tuple[str, ...] = get_args(Scenario)
CHANNELS: tuple[str, ...] = get_args(Channel)
NOISE_TAGS: tuple[str, ...] = get_args(NoiseTag)


def is_share_per_label(shares: object) -> bool:
    """A {label: number in [0, 1]} for each of the five labels (a stacked model's BERT shares)."""
    return (
        isinstance(shares, dict)
        and set(shares) == set(LABELS)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in shares.values())
    )

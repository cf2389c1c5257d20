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

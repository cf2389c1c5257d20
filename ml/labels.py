"""The five labels of ../shared/LABELS.md, in the fixed order used by every model and file."""

LABELS: tuple[str, ...] = ("polite", "clear", "empathetic", "threatening", "privacy_risk")
SCENARIOS: tuple[str, ...] = ("collection", "service", "complaint", "verification", "other")
CHANNELS: tuple[str, ...] = ("call", "chat")
NOISE_TAGS: tuple[str, ...] = (
    "typo", "homophone", "emoji", "halfwidth", "short", "long", "traditional", "english", "asr",
)

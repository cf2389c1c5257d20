"""replyqa: reply-quality scores for agents of online lending platforms.

from ml import Scorer
Scorer.load("models/default").score("您好，请问有什么可以帮您？")
"""

from ml.labels import LABELS

__all__ = ["LABELS", "InvalidReply", "ReplyScore", "Scorer"]


def __getattr__(name: str):
    # Imported lazily so that data commands do not pay for importing torch and transformers.
    if name in ("InvalidReply", "ReplyScore", "Scorer"):
        from ml.modeling import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'ml' has no attribute {name!r}")

"""Turning (context, reply) into model inputs, identically for training and scoring."""

from __future__ import annotations

from transformers import BatchEncoding, PreTrainedTokenizerBase

from ml.text import normalise_for_model


def encode_replies(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    contexts: list[str] | None,
    max_length: int,
    use_context: bool = True,
) -> list[BatchEncoding]:
    """One encoding per reply. With a context the model reads `[CLS] context [SEP] reply [SEP]`;
    the token limit is met by trimming the context first, and the reply only when it alone is too long."""
    texts = [normalise_for_model(t) for t in texts]
    contexts = [normalise_for_model(c or "") for c in contexts] if (contexts and use_context) else [""] * len(texts)
    reply_lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    encodings = []
    for text, context, reply_length in zip(texts, contexts, reply_lengths):
        if context and reply_length + 4 <= max_length:
            encodings.append(tokenizer(context, text, truncation="only_first", max_length=max_length))
        else:
            encodings.append(tokenizer(text, truncation=True, max_length=max_length))
    return encodings

"""The head this experiment tries: the five labels read from the element-wise maximum of the reply's
token states (through the same dense + tanh layer as BERT's pooler), instead of from the [CLS] token.

`use_reply_max_pooling()` swaps `BertForSequenceClassification.forward` for this one in the running
process, so that everything the project does with a model in that process (the Trainer, the cut-offs,
the ONNX and OpenVINO exports, the Scorer's torch runtime, the scoreboard) uses it. The saved
directories are standard BERT directories: loaded anywhere else they would run the [CLS] head, so
they are experiment artefacts only.
"""

from __future__ import annotations

import torch
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput


def reply_mask(attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
    """The reply's tokens: segment B of `[CLS] context [SEP] reply [SEP]`, or every real token of
    `[CLS] reply [SEP]` when there is no context (its segment ids are all 0)."""
    reply_segment = token_type_ids.max(dim=1, keepdim=True).values
    return attention_mask.bool() & (token_type_ids == reply_segment)


def reply_max_pool_forward(
    self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs
) -> SequenceClassifierOutput:
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    hidden = self.bert(
        input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True
    ).last_hidden_state
    mask = reply_mask(attention_mask, token_type_ids).unsqueeze(-1)
    strongest = hidden.masked_fill(~mask, -1e4).max(dim=1).values
    pooled = self.bert.pooler.activation(self.bert.pooler.dense(strongest))
    logits = self.classifier(self.dropout(pooled))
    return SequenceClassifierOutput(logits=logits)


def use_reply_max_pooling() -> None:
    BertForSequenceClassification.forward = reply_max_pool_forward

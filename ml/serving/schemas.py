"""The API's request, response and error models, and the input rules written into its OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

from ml.config import ServeConfig
from ml.data.text import SURROGATE
from ml.modeling.scorer import VISIBLE_CHAR

# What `_check_id` accepts: no control characters, no line or paragraph separators and no bidi
# controls, any of which can forge or disguise a log line (U+2028 breaks lines in many log viewers)
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"


def _check_id(value: str | None) -> str | None:
    if value is None:
        return None
    if SURROGATE.search(value) or not re.fullmatch(PRINTABLE, value):
        raise ValueError("id must not contain control characters, line separators, bidi controls or lone surrogates")
    return value


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(description="The agent's reply.")
    context: StrictStr | None = Field(None, description="The customer's preceding message.")
    id: StrictStr | None = Field(None, max_length=256, description="Your id for this reply; echoed back.")

    _id_is_printable = field_validator("id")(_check_id)


class ScoreRequest(BaseModel):
    """Either one reply (`text`, `context`, `id`) or `items`: a list of replies."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "王先生您好，您本期应还1,280元，请于6月15日前在App还款。",
                    "context": "我这个月要还多少？",
                    "id": "c-1",
                },
                {"items": [{"text": "再不还钱就把你欠钱的事发到你们公司群里。", "id": "c-2"}], "explain": True},
            ]
        },
    )
    text: StrictStr | None = None
    context: StrictStr | None = None
    id: StrictStr | None = Field(None, max_length=256)
    items: list[ReplyIn] | None = Field(None, description="Up to `max_items` replies (see GET /v1/model).")
    explain: StrictBool = Field(False, description="Add evidence spans for each positive label.")

    _id_is_printable = field_validator("id")(_check_id)

    @model_validator(mode="after")
    def one_form(self) -> ScoreRequest:
        if (self.items is None) == (self.text is None):
            raise ValueError("send either `text` (one reply) or `items` (a list of replies), not both or neither")
        if self.items is not None and not self.items:
            raise ValueError("`items` must hold at least one reply")
        if self.items is not None and (self.context is not None or self.id is not None):
            raise ValueError("with `items`, send `context` and `id` inside each item, not beside `items`")
        return self

    def replies(self) -> list[ReplyIn]:
        return self.items if self.items is not None else [ReplyIn(text=self.text, context=self.context, id=self.id)]


class SpanOut(BaseModel):
    start: int = Field(description="Offset of the span in the text as sent.")
    end: int
    text: str
    weight: float


class PiiOut(BaseModel):
    kind: str = Field(
        description="id_card, bank_card, mobile, landline, verification_code, code_request, "
        "password_request, cvv_request or address."
    )
    start: int = Field(description="Offset in the text as sent.")
    end: int
    validated: bool = Field(description="True when a checksum or numbering-plan library confirmed it.")


class ScoreOut(BaseModel):
    id: str | None = Field(None, description="Your id, echoed back; absent when you sent none.")
    probabilities: dict[str, float]
    decisions: dict[str, bool]
    evidence: dict[str, list[SpanOut]] | None = Field(None, description="Only with `explain: true`.")
    pii: list[PiiOut] = Field(default_factory=list, description="Personal data found by rule in the reply.")


class ScoreResponse(BaseModel):
    model: str
    version: str
    results: list[ScoreOut]


class ModelOut(BaseModel):
    name: str
    version: str
    runtime: str = Field(description='What runs it, e.g. "onnx-int8"; "+ngrams" marks a stacked model.')
    labels: list[str]
    thresholds: dict[str, float]
    max_chars: int
    max_context_chars: int
    max_items: int
    explain_max_items: int
    test_metrics: dict[str, Any]


class ErrorBody(BaseModel):
    """The one error shape of every non-2xx answer."""

    error: str
    details: Any = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "Malformed request.",
        401: "Missing or invalid API key.",
        408: "The request body stalled.",
        413: "Request body too large.",
        422: "Invalid input: the reason is in `error`, per-field problems in `details`.",
        503: "Busy or not ready: retry after the Retry-After header.",
        504: "The scoring work passed the request deadline.",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, "details": details}, headers=headers)


def document_limits(schema: dict[str, Any], max_chars: int, max_context_chars: int, serve: ServeConfig) -> None:
    """Write the configured input rules into the OpenAPI document, so that every request it calls
    valid is one the API accepts: exactly one of `text`/`items` (top-level `context` and `id` only with
    `text`), text with visible content and at most `max_chars` characters, context length, printable
    ids, item counts (fewer with `explain`)."""
    components = schema["components"]["schemas"]
    for name in ("ReplyIn", "ScoreRequest"):
        properties = components[name]["properties"]
        _string_branch(properties["text"]).update(maxLength=max_chars, pattern=VISIBLE_CHAR)
        _string_branch(properties["context"]).update(maxLength=max_context_chars)
        _string_branch(properties["id"]).update(pattern=PRINTABLE)
    request = components["ScoreRequest"]
    items = next(b for b in request["properties"]["items"]["anyOf"] if b.get("type") == "array")
    items.update(minItems=1, maxItems=serve.max_items)
    request["oneOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}, "items": {"type": "null"}}},
        {
            "required": ["items"],
            "properties": {
                "items": {"type": "array"},
                **{name: {"type": "null"} for name in ("text", "context", "id")},
            },
        },
    ]
    request["if"] = {"required": ["explain"], "properties": {"explain": {"const": True}}}
    request["then"] = {"properties": {"items": {"anyOf": [{"maxItems": serve.explain_max_items}, {"type": "null"}]}}}


def _string_branch(prop: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in prop.get("anyOf", [prop]) if b.get("type") == "string")

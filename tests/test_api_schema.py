"""A bounded schemathesis run: generated requests for every operation of the OpenAPI document, every
response checked against it with all of schemathesis's checks (no 5xx, documented status codes,
bodies that match their schemas, schema-valid requests accepted, auth enforced where declared)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ml.serving import create_app


@pytest.mark.parametrize("api_key", [None, "k1"], ids=["open", "with-keys"])
def test_the_api_keeps_to_its_openapi_document(tiny_scorer, monkeypatch, api_key):
    if api_key:
        monkeypatch.setenv("REPLYQA_API_KEYS", api_key)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(tiny_scorer))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/score", "GET /v1/model", "GET /metrics"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def keeps_to_the_document(case):
            case.call_and_validate(headers=headers)

        keeps_to_the_document()

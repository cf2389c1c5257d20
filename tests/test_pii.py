"""PII detectors: identifiers checked by library, patterns for secrets and addresses, masking in
every human-facing output."""

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ml.data.pii import find_pii, redact
from ml.reporting.report import build_report
from ml.serving import create_app
from ml.serving.batch import ScoreJob

VALID_ID, BAD_CHECK_ID = "11010519491231002X", "110105194912310021"  # same digits, wrong check character
VALID_CARD, BAD_CARD = "6222 0202 0011 2233 446", "6222 0202 0011 2233 441"


def kinds(text):
    return [(f.kind, text[f.start : f.end], f.validated) for f in find_pii(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"您的身份证号是{VALID_ID}对吧", [("id_card", VALID_ID, True)]),
        (f"身份证{BAD_CHECK_ID}", [("id_card", BAD_CHECK_ID, False)]),
        ("卡号 4111 1111 1111 1111 请核对", [("bank_card", "4111 1111 1111 1111", True)]),
        ("卡号 4111 1111 1111 1112 请核对", []),  # fails Luhn: not reported as a card
        ("请拨打13812345678", [("mobile", "13812345678", True)]),
        ("座机010-62345678", [("landline", "010-62345678", True)]),
        ("手机号12345678901", []),  # no mainland mobile starts with 12
        ("投诉电话400-690-8181，工作日9点到18点", []),  # a company's service number is not personal data
        ("请提供身份证后四位和预留手机尾号", []),
        ("您好，请把收到的验证码告诉我", [("code_request", "验证码告诉", False)]),
        ("验证码是 482913", [("verification_code", "482913", False)]),
        ("您把支付密码告诉我一下", [("password_request", "支付密码告诉", False)]),
        ("麻烦把卡背面三个数字念给我", [("cvv_request", "卡背面三个", False)]),
    ],
)
def test_detectors(text, expected):
    assert kinds(text) == expected


def test_an_id_number_is_not_also_a_card_or_a_phone_and_addresses_are_patterns():
    text = f"{VALID_ID}，电话13812345678，住建国路88号院3号楼2单元501室"
    found = kinds(text)
    assert [k for k, _, _ in found] == ["id_card", "mobile", "address"]
    assert found[2][2] is False and found[2][1].endswith("501室")


def test_redaction_keeps_the_last_four_and_the_length():
    text = f"身份证{VALID_ID}，卡号{VALID_CARD.replace(' ', '')}，验证码是482913"
    masked = redact(text)
    assert len(masked) == len(text) and VALID_ID not in masked and "002X" in masked
    assert "6222020200112233440" not in masked and "3446" in masked and "482913" not in masked


def test_the_api_returns_pii_findings(tiny_scorer):
    with TestClient(create_app(tiny_scorer)) as client:
        body = client.post("/v1/score", json={"text": f"  您的身份证号{VALID_ID}对吗"}).json()
    [finding] = body["results"][0]["pii"]
    text = f"  您的身份证号{VALID_ID}对吗"
    assert finding["kind"] == "id_card" and finding["validated"] and text[finding["start"] : finding["end"]] == VALID_ID


def test_batch_output_has_a_pii_column_and_redact_masks_text(tiny_scorer, tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame([{"id": "1", "text": f"卡号{VALID_CARD}", "context": f"我身份证{VALID_ID}"}]).to_csv(
        source, index=False
    )
    plain, masked = tmp_path / "plain.jsonl", tmp_path / "masked.jsonl"
    ScoreJob(tiny_scorer, str(source), str(plain)).run(show_progress=False)
    ScoreJob(tiny_scorer, str(source), str(masked), redact=True).run(show_progress=False)
    plain_row, masked_row = (json.loads(p.read_text(encoding="utf-8")) for p in (plain, masked))
    assert [f["kind"] for f in json.loads(plain_row["pii"])] == ["bank_card"]
    assert plain_row["text"] == f"卡号{VALID_CARD}"
    assert "0202" not in masked_row["text"] and masked_row["text"].endswith("3 446")
    assert VALID_ID not in masked_row["context"]


def test_the_report_never_shows_a_validated_identifier_unmasked(tiny_scorer, tiny_trained_model, tmp_path):
    rows = [
        {"id": str(i), "agent_id": "A1", "text": t, "context": f"我的身份证是{VALID_ID}"}
        for i, t in enumerate(
            [f"你身份证{VALID_ID}我们都有，不还就发你单位", f"卡号{VALID_CARD}我们知道，再不还就上门"]
        )
    ]
    source, scored = tmp_path / "in.csv", tmp_path / "scored.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    ScoreJob(tiny_scorer, str(source), str(scored)).run(show_progress=False)
    frame = pd.read_csv(scored, dtype=str, keep_default_na=False)
    frame["threatening"] = "1"  # both reach the severe list
    frame.to_csv(scored, index=False)
    page = tmp_path / "report.html"
    build_report(scored, page, None, str(tiny_trained_model))
    html = page.read_text(encoding="utf-8")
    assert VALID_ID not in html and VALID_CARD not in html and "002X" in html
    assert "id_card (checksum/number plan valid)" in html and "bank_card" in html
    build_report(scored, page, None, str(tiny_trained_model), show_pii=True)
    assert VALID_ID in page.read_text(encoding="utf-8")

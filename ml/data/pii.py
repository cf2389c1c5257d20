"""Personal data in a reply, found by rules a reviewer can check, and masked for human eyes.

Identifiers are validated with well-kept libraries: `stdnum.cn.ric` (the 18-character Resident
Identity Card number and its check character), `stdnum.luhn` (bank-card numbers) and
`phonenumbers` (mainland mobile and landline numbers). Requests for secrets and addresses down to
the door number have no checksum: they are patterns, reported with `validated: false`, and their
precision is measured in experiments/pii/.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric

KEEP_LAST = 4
_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){15,18}(?![\d-])")
_CODE_READ = re.compile(r"(?:验证码|校验码|动态码|短信码)\D{0,6}?(\d{4,6})(?!\d)")
_CODE_ASK = re.compile(r"(?:验证码|校验码|动态码|短信码)[^，。,.!?！？]{0,10}?(?:告诉|念|报|发|说|读)")
_PASSWORD_ASK = re.compile(
    r"(?:登录|支付|交易|取款|银行卡|账户|App)?密码[^，。,.!?！？]{0,10}?(?:告诉|念|报|发|说|输入给|是多少)"
)
_CVV = re.compile(r"CVV|cvv|安全码|卡背面[^，。,.!?！？]{0,6}?(?:三|3)(?:个|位)")
_ADDRESS = re.compile(
    r"[\u4e00-\u9fa5]{2,12}(?:路|街|大道|巷|弄|村|小区|花园|苑|公寓|大厦)[\u4e00-\u9fa5\d]{0,8}?\d+\s?(?:号楼|号院|号|栋|幢|单元)"
    r"(?:[\u4e00-\u9fa5\d]{0,6}?\d+\s?(?:室|户|楼|层))?"
)
_PHONE_KINDS = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "landline",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
}
KINDS = (
    "id_card",
    "bank_card",
    "mobile",
    "landline",
    "verification_code",
    "code_request",
    "password_request",
    "cvv_request",
    "address",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    start: int  # offsets index the text as given
    end: int
    validated: bool  # True when a checksum or numbering-plan library confirmed it

    def to_dict(self) -> dict:
        return asdict(self)


def find_pii(text: str) -> list[Finding]:
    """Every finding in `text`, ordered by position; an identifier is reported once, as its most
    specific kind (an ID number is not also a card or a phone number)."""
    findings: list[Finding] = []
    for match in _ID.finditer(text):
        findings.append(Finding("id_card", match.start(), match.end(), ric.is_valid(match.group())))
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if _free(findings, match.start(), match.end()) and luhn.is_valid(digits):
            findings.append(Finding("bank_card", match.start(), match.end(), True))
    for match in phonenumbers.PhoneNumberMatcher(text, "CN", leniency=phonenumbers.Leniency.VALID):
        kind = _PHONE_KINDS.get(phonenumbers.number_type(match.number))  # service numbers (400, 800) are not personal
        if kind and _free(findings, match.start, match.end):
            findings.append(Finding(kind, match.start, match.end, True))
    for kind, pattern, group in (
        ("verification_code", _CODE_READ, 1),
        ("code_request", _CODE_ASK, 0),
        ("password_request", _PASSWORD_ASK, 0),
        ("cvv_request", _CVV, 0),
        ("address", _ADDRESS, 0),
    ):
        for match in pattern.finditer(text):
            if _free(findings, match.start(group), match.end(group)):
                findings.append(Finding(kind, match.start(group), match.end(group), False))
    return sorted(findings, key=lambda f: (f.start, f.end))


def _free(findings: list[Finding], start: int, end: int) -> bool:
    return all(end <= f.start or start >= f.end for f in findings)


MASKED_KINDS = ("id_card", "bank_card", "mobile", "landline", "verification_code")


def redact(text: str, findings: list[Finding] | None = None) -> str:
    """`text` with identifiers, phone numbers and codes masked except their last four characters
    (the same length, so offsets into the text stay valid)."""
    findings = find_pii(text) if findings is None else findings
    characters = list(text)
    for finding in findings:
        if finding.kind not in MASKED_KINDS:
            continue
        positions = [i for i in range(finding.start, finding.end) if characters[i].isalnum()]
        for i in positions[: max(len(positions) - KEEP_LAST, 0)] if finding.kind != "verification_code" else positions:
            characters[i] = "*"
    return "".join(characters)

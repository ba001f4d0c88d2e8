"""The redaction engine: every entity type with positives and validator-rejected negatives, overlap
handling, both modes, nested values, configuration errors, and property tests (idempotence, no
leak of the original, entity-free text untouched).

Key-shaped fixtures are built from pieces at run time so that this file holds no secret-shaped
literal for the repository's secret scan."""

from __future__ import annotations

import base64
import itertools
import json
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agenthost.errors import ConfigError
from agenthost.security.detectors import iban_valid, israeli_id_valid, luhn_valid, ssn_valid
from agenthost.security.redaction import ENTITY_TYPES, Finding, Redactor

ALNUM = string.ascii_letters + string.digits


def b64u(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def make_jwt(alg: str = "HS256") -> str:
    return ".".join([b64u({"alg": alg, "typ": "JWT"}), b64u({"sub": "42"}), "c2lnbmF0dXJl" + "x" * 20])


OPENAI = "sk-" + "proj-" + "A1b2C3d4" * 6
ANTHROPIC = "sk-" + "ant-" + "api03-" + "Zz9Yy8Xx" * 8
AWS = "AKIA" + "Q3EXAMPLE7KEYID2"
GITHUB = "ghp" + "_" + "a1B2c3D4e5" * 4  # pragma: allowlist secret
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0" * 5
SLACK = "xox" + "b-" + "123456789012-" + "AbCdEfGhIjKl"
GOOGLE = "AIza" + "Sy" + "B1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R"  # pragma: allowlist secret
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RESTRICTED = "rk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
PEM_BODY = "MIIEowIBAAKCAQEA" + "q" * 48 + "\n" + "Zm9vYmFy" * 8
PEM = f"-----BEGIN RSA {'PRIVATE'} KEY-----\n{PEM_BODY}\n-----END RSA {'PRIVATE'} KEY-----"

CARDS = [
    "4111 1111 1111 1111",
    "4111111111111111",
    "5500-0000-0000-0004",
    "378282246310005",
    "6011 1111 1111 1117",
]
ISRAELI_IDS = ["123456782", "000000018", "039337423"]
SSNS = ["123-45-6789", "078-05-1120"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "IL620108000000099999999"]
IPS = ["192.168.1.1", "8.8.8.8", "2001:db8::1", "fe80::1ff:fe23:4567:890a"]
PHONES = [
    "052-1234567",
    "+972-52-123-4567",
    "+972 54 765 4321",
    "03-6543210",
    "+44 20 7946 0958",
    "(212) 555-0123",
]
EMAILS = ["john.doe@example.com", "dana+news@mail.co.il"]
KEYS = [OPENAI, ANTHROPIC, AWS, GITHUB, GITHUB_PAT, SLACK, GOOGLE, STRIPE, STRIPE_RESTRICTED]

POSITIVES: list[tuple[str, str]] = [
    *(("email", v) for v in EMAILS),
    *(("phone", v) for v in PHONES),
    *(("credit_card", v) for v in CARDS),
    *(("israeli_id", v) for v in ISRAELI_IDS),
    *(("us_ssn", v) for v in SSNS),
    *(("iban", v) for v in IBANS),
    *(("ip_address", v) for v in IPS),
    *(("api_key", v) for v in KEYS),
    ("api_key", "Bearer " + "abcDEF123456ghiJKL789"),
    ("jwt", make_jwt()),
    ("jwt", make_jwt("RS256")),
    ("private_key", PEM),
]


def types(text: str) -> list[str]:
    return [f.type for f in Redactor().find(text)]


@pytest.mark.parametrize(("entity", "value"), POSITIVES)
def test_each_entity_is_found_with_its_exact_span(entity: str, value: str) -> None:
    text = f"before {value} after"
    assert Redactor().find(text) == [Finding(entity, 7, 7 + len(value), value)]
    assert Redactor().redact(text) == f"before [{entity.upper()}] after"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn
        "card 4111 1111 1111 1112",
        "reference 1234567812345678",
        "account 0000000000000000",  # passes Luhn, but no card starts with 0
        "id 123456789",  # Israeli ID check digit wrong
        "id 039337424",
        "ssn 000-12-3456",
        "ssn 666-12-3456",
        "ssn 900-12-3456",
        "ssn 123-00-4567",
        "ssn 123-45-0000",
        "iban GB83 WEST 1234 5698 7654 32",  # wrong check digits
        "iban DE88370400440532013000",
        "version 1.2.3.4.5",
        "upgrade to version 1.2.3.4",
        "999.1.1.1 and 01.02.03.04",
        "meeting at 12:30:45",
        "MAC 00:1a:2b:3c:4d:5e",
        "std::vector<int>",
        "date 2024-01-15 and 15/01/2024 and 2024.01.15",
        "timestamp 1700000000",
        "product code AB-1234-567 and part 05-123",
        "request 123e4567-e89b-12d3-a456-426614174000",
        "sha " + "0123456789abcdef" * 4,
        "blob " + base64.b64encode(b"x" * 48).decode(),
        "not a jwt " + b64u({"typ": "JWT"}) + "." + b64u({"a": 1}) + ".c2lnbmF0dXJl",  # header has no alg
        "sk-learn and ghp_ and AKIA prefixes alone",
        "Bearer authentication-is-required",
        "the @channel and price@100",
        "logo@2x.png",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
    ],
)
def test_negatives_are_left_alone(text: str) -> None:
    assert Redactor().find(text) == []
    assert Redactor().redact(text) == text
    assert Redactor(mode="mask").redact(text) == text


def test_validators() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert israeli_id_valid("123456782")
    assert israeli_id_valid("18")  # padded with leading zeros to 000000018
    assert not israeli_id_valid("123456789")
    assert not israeli_id_valid("000000000")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")
    assert ssn_valid("123", "45", "6789")
    assert not ssn_valid("987", "65", "4321")


def test_overlap_longest_and_most_specific_wins() -> None:
    # A JWT after "Bearer" is one api_key finding covering both, not a nested jwt.
    token = make_jwt()
    assert types(f"Authorization: Bearer {token}") == ["api_key"]
    # An Anthropic key is not split into an OpenAI key plus rest.
    findings = Redactor().find(f"key={ANTHROPIC}")
    assert [(f.type, f.text) for f in findings] == [("api_key", ANTHROPIC)]
    # An IPv4-mapped IPv6 address is one finding, not an IPv6 and an IPv4.
    assert [f.text for f in Redactor().find("from ::ffff:192.0.2.128 today")] == ["::ffff:192.0.2.128"]
    # A 9-digit valid Israeli ID inside a longer Luhn-valid card is the card.
    assert types("pay 4580 4580 4580 4580") == ["credit_card"]


def test_findings_are_sorted_and_non_overlapping() -> None:
    text = f"Dana dana@example.com 054-1234567 card 4111111111111111 ip 10.0.0.1 key {AWS}"
    findings = Redactor().find(text)
    assert [f.type for f in findings] == ["email", "phone", "credit_card", "ip_address", "api_key"]
    for a, b in itertools.pairwise(findings):
        assert a.end <= b.start
    assert all(text[f.start : f.end] == f.text for f in findings)


def test_entity_selection() -> None:
    text = "mail a@b.com card 4111111111111111"
    assert Redactor(entities=["email"]).redact(text) == "mail [EMAIL] card 4111111111111111"
    assert Redactor(entities=[]).redact(text) == text


def test_unknown_entity_raises_config_error_listing_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        Redactor(entities=["email", "passport"])
    assert "passport" in info.value.message
    for entity in ENTITY_TYPES:
        assert entity in info.value.message


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("5500-0000-0000-0004", "****-****-****-0004"),
        ("123-45-6789", "***-**-6789"),
        ("052-1234567", "***-*****67"),
        ("123456782", "*******82"),
        ("GB82 WEST 1234 5698 7654 32", "GB** **** **** **** **** 32"),
        ("192.168.1.1", "192.*.*.*"),
        ("2001:db8::1", "2001:****"),
        (AWS, "AKIA********"),
        ("Bearer abcDEF123456ghiJKL789", "Bearer ********"),
        (PEM, "********"),
    ],
)
def test_mask_mode(value: str, masked: str) -> None:
    assert Redactor(mode="mask").redact(f"x {value} y") == f"x {masked} y"


@pytest.mark.parametrize(
    ("entity", "value"), [p for p in POSITIVES if p[0] in {"api_key", "jwt", "private_key"}]
)
def test_mask_never_leaks_more_than_four_characters_of_a_secret(entity: str, value: str) -> None:
    masked = Redactor(mode="mask").redact(value)
    kept = masked.replace("*", "").removeprefix("Bearer ")
    assert len(kept) <= 4, (entity, masked)


def test_redact_value_recurses_into_containers() -> None:
    value = {
        "user": {"email": "a@b.com", "tags": ["card 4111111111111111", ("ip", "10.0.0.1")]},
        "count": 3,
        "ok": True,
        "none": None,
        "a@b.com": 1.5,
    }
    assert Redactor().redact_value(value) == {
        "user": {"email": "[EMAIL]", "tags": ["card [CREDIT_CARD]", ("ip", "[IP_ADDRESS]")]},
        "count": 3,
        "ok": True,
        "none": None,
        "[EMAIL]": 1.5,
    }


@pytest.mark.parametrize("mode", ["placeholder", "mask"])
@pytest.mark.parametrize(("entity", "value"), POSITIVES)
def test_redaction_is_idempotent_for_every_entity(mode: str, entity: str, value: str) -> None:
    redactor = Redactor(mode=mode)  # type: ignore[arg-type]
    once = redactor.redact(f"see {value}.")
    assert redactor.find(once) == []
    assert redactor.redact(once) == once
    assert value not in once


# --- properties ------------------------------------------------------------------------------------


def _luhn_complete(body: str) -> str:
    return next(body + d for d in string.digits if luhn_valid(body + d))


def _israeli_id(body: str) -> str:
    return next(body + d for d in string.digits if israeli_id_valid(body + d))


entity_values = st.one_of(
    st.sampled_from([v for _, v in POSITIVES]),
    st.builds(
        lambda local, domain: f"{local}@{domain}.com",
        st.text(string.ascii_lowercase, min_size=1, max_size=8),
        st.text(string.ascii_lowercase, min_size=1, max_size=8),
    ),
    st.builds(lambda b: _luhn_complete("4" + b), st.text(string.digits, min_size=14, max_size=14)),
    st.builds(lambda b: _israeli_id("1" + b), st.text(string.digits, min_size=7, max_size=7)),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(1, 255)] * 4),
    st.builds(
        lambda b: "AKIA" + b, st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16)
    ),
    st.builds(lambda b: "05" + b[0] + "-" + b[1:], st.text(string.digits, min_size=8, max_size=8)),
)
# Prose without digits, '@', ':' or '+': nothing an entity can be made of on its own.
filler = st.text(alphabet=string.ascii_letters + " .,;!?()'\"\n-", max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(filler, entity_values), min_size=1, max_size=5),
    filler,
    st.sampled_from(["placeholder", "mask"]),
)
def test_property_idempotent_and_no_leak(parts: list[tuple[str, str]], tail: str, mode: str) -> None:
    text = " ".join(f"{pre} {value}" for pre, value in parts) + " " + tail
    redactor = Redactor(mode=mode)  # type: ignore[arg-type]
    once = redactor.redact(text)
    assert redactor.redact(once) == once
    fillers = " ".join(pre for pre, _ in parts) + " " + tail
    for _, value in parts:
        assume(value not in fillers)
        assert value not in once


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=12),
            st.integers(0, 999).map(str),
            st.sampled_from([".", ",", "!", "?", "-", "(", ")", "'", ":"]),
        ),
        max_size=30,
    )
)
def test_property_prose_without_entities_is_unchanged(words: list[str]) -> None:
    # Words and numbers of at most three digits, separated by spaces: no entity can form.
    text = " ".join(words)
    assert Redactor().redact(text) == text
    assert Redactor(mode="mask").redact(text) == text


@pytest.mark.parametrize("mode", ["placeholder", "mask"])
def test_entities_glued_together_are_all_redacted_in_one_call(mode: str) -> None:
    # The phone is only found once the IPv6 address before it is replaced; redact repeats until done.
    redactor = Redactor(mode=mode)  # type: ignore[arg-type]
    text = "x=2001:db8::1+972 54 765 4321 end"
    once = redactor.redact(text)
    assert "765" not in once
    assert redactor.find(once) == []
    assert redactor.redact(once) == once

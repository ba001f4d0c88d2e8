"""Entity detectors for the redaction engine: patterns plus the validators that cut false positives.

Each detector yields `(start, end)` candidate spans of one entity type. A regex proposes a
candidate; a validator (Luhn, the Israeli ID check digit, IBAN mod-97, SSN ranges, IP octets,
JWT header) accepts or rejects it. A rejected candidate does not swallow the text it covered:
the scan resumes one character after its start.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterator

__all__ = [
    "DETECTORS",
    "PEM_HEADER",
    "iban_valid",
    "israeli_id_valid",
    "luhn_valid",
    "private_key_end",
    "ssn_valid",
]

Span = tuple[int, int]
Detector = Callable[[str], Iterator[Span]]


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod-10) checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:  # noqa: PLR2004
                d -= 9
        total += d
    return total % 10 == 0


def israeli_id_valid(digits: str) -> bool:
    """The Israeli ID (Teudat Zehut) check digit; 8-digit forms are padded with a leading zero."""
    if not digits.isdigit() or not 1 <= len(digits) <= 9 or int(digits) == 0:  # noqa: PLR2004
        return False
    total = 0
    for i, ch in enumerate(digits.zfill(9)):
        d = int(ch) * (1 + i % 2)
        total += d - 9 if d > 9 else d  # noqa: PLR2004
    return total % 10 == 0


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN ranges: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    a = int(area)
    return a not in {0, 666} and a < 900 and int(group) != 0 and int(serial) != 0  # noqa: PLR2004


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN given without spaces."""
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():  # noqa: PLR2004
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _scan(
    pattern: re.Pattern[str], text: str, accept: Callable[[re.Match[str]], Span | None]
) -> Iterator[Span]:
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        span = accept(m)
        if span is None:
            pos = m.start() + 1
        else:
            yield span
            pos = max(span[1], m.start() + 1)


def _always(m: re.Match[str]) -> Span:
    return m.span()


# --- email -------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9]|:[\w/~])"
)
# `logo@2x.png` is a file name, not an address.
_FILE_SUFFIX = re.compile(r"(?i)\.(?:png|jpe?g|gif|svg|webp|ico|bmp|pdf|css|js)$")


def detect_email(text: str) -> Iterator[Span]:
    return _scan(_EMAIL, text, lambda m: None if _FILE_SUFFIX.search(m.group()) else m.span())


# --- phone -------------------------------------------------------------------------------------

_PHONE_IL_MOBILE = re.compile(r"(?<![\w+.-])0(?:5\d|7[2-9])[- ]?\d{3}[- ]?\d{4}(?![\w-]|\.\d)")
_PHONE_IL_LANDLINE = re.compile(r"(?<![\w+.-])0[2-489](?:-\d{7}|-\d{3}-\d{4}| \d{3} \d{4})(?![\w-]|\.\d)")
_PHONE_US = re.compile(r"(?<![\w+.-])(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?![\w-]|\.\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])\+[1-9]\d{0,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}(?![\w-]|\.\d)")


def _intl_phone(m: re.Match[str]) -> Span | None:
    digits = re.sub(r"\D", "", m.group())
    return m.span() if 8 <= len(digits) <= 15 else None  # noqa: PLR2004


def detect_phone(text: str) -> Iterator[Span]:
    yield from _scan(_PHONE_IL_MOBILE, text, _always)
    yield from _scan(_PHONE_IL_LANDLINE, text, _always)
    yield from _scan(_PHONE_US, text, _always)
    yield from _scan(_PHONE_INTL, text, _intl_phone)


# --- credit card -------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w.+-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")


def _card(m: re.Match[str]) -> Span | None:
    raw = m.group()
    digits = re.sub(r"\D", "", raw)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":  # noqa: PLR2004
        return None
    separators = set(re.sub(r"\d", "", raw))
    if len(separators) > 1:
        return None
    if separators:
        groups = [len(g) for g in re.split(r"[ -]", raw)]
        if groups[0] != 4 or any(not 3 <= g <= 6 for g in groups[1:]):  # noqa: PLR2004
            return None
    return m.span() if luhn_valid(digits) else None


def detect_credit_card(text: str) -> Iterator[Span]:
    return _scan(_CARD, text, _card)


# --- Israeli ID, US SSN ------------------------------------------------------------------------

_IL_ID = re.compile(r"(?<![\w.+-])\d{9}(?![\w-]|\.\d)")
_SSN = re.compile(r"(?<![\w.+-])(\d{3})-(\d{2})-(\d{4})(?![\w-]|\.\d)")


def detect_israeli_id(text: str) -> Iterator[Span]:
    return _scan(_IL_ID, text, lambda m: m.span() if israeli_id_valid(m.group()) else None)


def detect_us_ssn(text: str) -> Iterator[Span]:
    return _scan(_SSN, text, lambda m: m.span() if ssn_valid(*m.groups()) else None)


# --- IBAN --------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")


def detect_iban(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        # Try the longest candidate first, then drop trailing space-separated groups, so that a
        # word following the IBAN ("... 0000 THANKS") does not hide it.
        end = len(raw)
        while end > 0:
            if iban_valid(raw[:end].replace(" ", "")):
                yield m.start(), m.start() + end
                break
            cut = raw.rfind(" ", 0, end)
            if cut <= 4:  # noqa: PLR2004
                break
            end = cut


# --- IP addresses ------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[\w.]+)?(?![\w:]|\.\d)"
)
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver\.?|release|build)\s*$")


def _ipv4(text: str) -> Callable[[re.Match[str]], Span | None]:
    def accept(m: re.Match[str]) -> Span | None:
        octets = m.group().split(".")
        if any(len(o) > 1 and o[0] == "0" for o in octets) or any(int(o) > 255 for o in octets):  # noqa: PLR2004
            return None
        if _VERSION_CONTEXT.search(text[max(0, m.start() - 12) : m.start()]):
            return None
        return m.span()

    return accept


def _ipv6(m: re.Match[str]) -> Span | None:
    candidate = m.group()
    if sum(ch in "0123456789abcdefABCDEF" for ch in candidate) < 2:  # noqa: PLR2004
        return None
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return m.span()


def detect_ip_address(text: str) -> Iterator[Span]:
    yield from _scan(_IPV4, text, _ipv4(text))
    yield from _scan(_IPV6, text, _ipv6)


# --- API keys, JWTs, private keys --------------------------------------------------------------

_KEY_PATTERNS = (
    r"sk-ant-[A-Za-z0-9_-]{20,}",  # Anthropic
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key id
    r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained token
    r"xox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
    r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",  # Stripe secret / restricted keys
)
_API_KEY = re.compile(r"(?<![A-Za-z0-9_-])(?:" + "|".join(_KEY_PATTERNS) + r")(?![A-Za-z0-9_-])")
_BEARER = re.compile(
    r"(?<![\w-])[Bb]earer[ \t]+[A-Za-z0-9._~+/-]{15,}[A-Za-z0-9_~+/-]=*(?![\w~+/=-]|\.[\w~+/-])"
)


def _bearer(m: re.Match[str]) -> Span | None:
    token = m.group().split()[-1]
    # A real token mixes letters and digits; "Bearer authentication-required" is prose.
    has_digit = any(ch.isdigit() for ch in token)
    has_alpha = any(ch.isalpha() for ch in token)
    return m.span() if has_digit and has_alpha else None


def detect_api_key(text: str) -> Iterator[Span]:
    yield from _scan(_API_KEY, text, _always)
    yield from _scan(_BEARER, text, _bearer)


_JWT = re.compile(r"(?<![\w.-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?![\w-]|\.[\w-])")


def _jwt(m: re.Match[str]) -> Span | None:
    header = m.group().split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    return m.span() if isinstance(decoded, dict) and "alg" in decoded else None


def detect_jwt(text: str) -> Iterator[Span]:
    return _scan(_JWT, text, _jwt)


# A private key block is a header, a body of base64 and PEM header lines holding a run of at least
# 16 base64 characters, and the first footer after that run. It is found with linear scans rather
# than one regex with two lazy quantifiers around the run, which backtracks quadratically or worse
# on an unterminated block (seconds for a few KB) and would let model output stall the stream.
PEM_HEADER = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_FOOTER = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,.-]*")
_PEM_RUN = re.compile(r"[A-Za-z0-9+/=]{16}")


def private_key_end(text: str, body: int, endpos: int) -> tuple[int | None, int]:
    """For a header ending at `body`: where its block ends within `text[:endpos]` (None: not
    complete there), and where its run of body characters stops (at most `endpos`)."""
    region = m.end() if (m := _PEM_BODY.match(text, body, endpos)) else body
    run = _PEM_RUN.search(text, body, region)
    footer = _PEM_FOOTER.search(text, run.end(), region) if run else None
    return (footer.end() if footer else None), region


def detect_private_key(text: str) -> Iterator[Span]:
    pos = 0
    while (header := PEM_HEADER.search(text, pos)) is not None:
        end, _ = private_key_end(text, header.end(), len(text))
        if end is None:
            pos = header.start() + 1
        else:
            yield header.start(), end
            pos = end


DETECTORS: dict[str, Detector] = {
    "email": detect_email,
    "phone": detect_phone,
    "credit_card": detect_credit_card,
    "israeli_id": detect_israeli_id,
    "us_ssn": detect_us_ssn,
    "iban": detect_iban,
    "ip_address": detect_ip_address,
    "api_key": detect_api_key,
    "jwt": detect_jwt,
    "private_key": detect_private_key,
}

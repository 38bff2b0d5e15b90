"""Database passwords never shown: URLs and error messages masked before anything prints them."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import make_url

MASK = "***"


def mask_url(url: str) -> str:
    """Return `url` with its password (in the user part or a `password=` parameter) hidden.

    The rest of the URL is kept exactly as written (a socket path in ?host= stays readable).
    """
    try:
        has_password = bool(make_url(url).password)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: mask anything like one
        has_password = True
    masked = url
    if has_password:
        masked = re.sub(r"^([^:/\s]+://[^:/@\s]*:)[^@]*@", rf"\1{MASK}@", masked)
    # libpq also accepts the password as a query parameter.
    return re.sub(r"([?&]password=)[^&\s]*", rf"\1{MASK}", masked, flags=re.IGNORECASE)


def _passwords_in(url: str | None) -> list[str]:
    """The password(s) in a database URL, as written and as decoded."""
    if not url:
        return []
    found: list[str] = []
    try:
        parsed = make_url(url)
        if parsed.password:
            found.append(str(parsed.password))
        query_password = parsed.query.get("password")
        if isinstance(query_password, str):
            found.append(query_password)
        elif query_password:
            found.extend(query_password)
    except Exception:  # noqa: BLE001 - unparseable: fall back to the user:password@ pattern
        match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        if match:
            found.append(match.group(1))
    found = [p for p in found if p]
    # The URL holds the encoded form; libraries may show either.
    return found + [quote(p, safe="") for p in found] + [quote_plus(p) for p in found]


def mask_secrets(text: str, url: str | None = None) -> str:
    """Scrub database passwords out of `text` (an error message, a log line).

    Removes the password of `url` wherever it appears, and the password part of any
    `scheme://user:password@host` URL or `password=...` setting in the text.
    """
    if url:
        text = text.replace(url, mask_url(url))
    # Longest first, so a password that contains another one is replaced whole. Whole tokens
    # only: a password "postgres" must not turn "postgresql://" into "***ql://".
    for secret in sorted(set(_passwords_in(url)), key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", MASK, text)
    text = re.sub(r"(://[^:/@\s]*:)[^@\s/]+@", rf"\1{MASK}@", text)
    return re.sub(
        r"(\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", rf"\1{MASK}", text, flags=re.IGNORECASE
    )

"""Database passwords never shown: URLs checked, and URLs and error messages masked, before
anything prints them.

A URL is parsed before anything connects with it (`parse_database_url`): one that cannot be
read unambiguously is refused with a message that does not echo it. An unescaped `@` in a
password (`postgresql://u:Real@Pw0rd@host/db`) would otherwise be read as part of the host
name, and the driver's "could not translate host name" error would show the rest of the
password.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url

MASK = "***"

# The schemes the warehouse accepts; it COPYs through psycopg2.
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg2")

PERCENT_ENCODING_HINT = (
    "percent-encode special characters in the user name and password (@ as %40, : as %3A, "
    "/ as %2F, % as %25)"
)
URL_FORM = "postgresql://user:password@host:5432/dbname"

# `key=value` pairs of a libpq connection string ("host=db user=carbon password=...").
LIBPQ_KEY_VALUE = re.compile(r"^\s*[A-Za-z_]+\s*=")


class DatabaseUrlError(ValueError):
    """A database URL that cannot be used; the message never contains the URL."""


def _before_query(url: str) -> str:
    return url.split("?", 1)[0]


def parse_database_url(url: str | None, source: str = "the database URL") -> URL:
    """`url` parsed, or DatabaseUrlError saying what is wrong with it (without echoing it).

    `source` names where the URL came from (CARBON_DATABASE_URL, --database-url...).
    Refused: an empty value, a libpq key=value string, more than one `@` before the query
    (an unescaped `@` in the password: where the host starts is a guess), a URL SQLAlchemy
    cannot read (a port that is not a number...) and schemes other than PostgreSQL's.
    """
    text = (url or "").strip()
    if not text:
        raise DatabaseUrlError(f"{source} is empty: set it to {URL_FORM}")
    if "://" not in text:
        if LIBPQ_KEY_VALUE.match(text):
            raise DatabaseUrlError(
                f"{source} is a libpq key=value string, not a URL: write it as {URL_FORM} "
                f"and {PERCENT_ENCODING_HINT}"
            )
        raise DatabaseUrlError(f"{source} is not a URL: write it as {URL_FORM}")
    if _before_query(text).count("@") > 1:
        raise DatabaseUrlError(
            f"{source} has more than one '@' before the host, so the host cannot be told apart "
            f"from the password: {PERCENT_ENCODING_HINT}"
        )
    try:
        parsed = make_url(text)
    except Exception:  # noqa: BLE001 - SQLAlchemy's message may quote a part of the URL
        raise DatabaseUrlError(
            f"{source} could not be parsed as {URL_FORM}: check the port is a number and "
            f"{PERCENT_ENCODING_HINT}"
        ) from None
    if parsed.drivername not in POSTGRES_SCHEMES:
        raise DatabaseUrlError(
            f"{source} uses the scheme {parsed.drivername!r}: use postgresql:// or "
            "postgresql+psycopg2://"
        )
    if parsed.host and re.search(r"[@\s]", parsed.host):
        raise DatabaseUrlError(f"{source} has an invalid host name: {PERCENT_ENCODING_HINT}")
    return parsed


def mask_url(url: str | None) -> str:
    """Return `url` with its password (in the user part or a `password=` parameter) hidden.

    The rest of the URL is kept exactly as written (a socket path in ?host= stays readable).
    A URL with several `@` before its query is masked up to the last of them, so no part of a
    password with an unescaped `@` shows.
    """
    if not url:
        return ""
    masked = url
    if _before_query(url).count("@") > 1:
        masked = re.sub(r"^([^:/\s]+://[^:/@\s]*:).*@", rf"\1{MASK}@", _before_query(url))
        masked += url[len(_before_query(url)) :]
    else:
        try:
            has_password = bool(make_url(url).password)
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: mask anything like one
            has_password = True
        if has_password:
            masked = re.sub(r"^([^:/\s]+://[^:/@\s]*:)[^@]*@", rf"\1{MASK}@", masked)
    # libpq also accepts the password as a query parameter.
    return re.sub(r"([?&]password=)[^&\s]*", rf"\1{MASK}", masked, flags=re.IGNORECASE)


def _passwords_in(url: str | None) -> list[str]:
    """The password(s) in a database URL, as written and as decoded, and for a password with
    an unescaped `@`, each of its parts."""
    if not url:
        return []
    found: list[str] = []
    with contextlib.suppress(Exception):  # unparseable: the patterns below still apply
        parsed = make_url(url)
        if parsed.password:
            found.append(str(parsed.password))
        query_password = parsed.query.get("password")
        if isinstance(query_password, str):
            found.append(query_password)
        elif query_password:
            found.extend(query_password)
    # The user part ends at the LAST '@' before the query (as urllib reads it), so a password
    # with an unescaped '@' is found whole, and its parts too.
    credentials = _before_query(url).partition("://")[2].rpartition("@")[0]
    if ":" in credentials:
        whole = credentials.split(":", 1)[1]
        found += [whole, *whole.split("@")]
    match = re.search(r"\bpassword\s*=\s*('[^']*'|[^\s&'\"]+)", url, flags=re.IGNORECASE)
    if match:
        found.append(match.group(1).strip("'"))
    found = [p for p in dict.fromkeys(found) if p]
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
    # Up to the last '@' of the URL's authority: a password may hold an unescaped '@'.
    text = re.sub(r"(://[^:/@\s]*:)[^\s/]*@", rf"\1{MASK}@", text)
    return re.sub(
        r"(\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", rf"\1{MASK}", text, flags=re.IGNORECASE
    )


def describe_error(error: BaseException, *urls: str | None) -> str:
    """An error as one line, 'ErrorType: message', with the passwords of `urls` (and anything
    shaped like a password) masked.

    For a database error, the driver's own error rather than SQLAlchemy's wrapper (which adds
    the statement and a link), followed by what to check when it could not connect; a
    DatabaseUrlError is its message alone (it names the problem and never holds the URL).
    """
    if isinstance(error, DatabaseUrlError):
        return str(error)
    shown = getattr(error, "orig", None) or error
    message = f"{type(shown).__name__}: {' '.join(str(shown).split())}"
    if type(shown).__name__ == "OperationalError":
        message += " (check the URL's host, port, user and password, and that the server is up)"
    for url in urls or (None,):
        message = mask_secrets(message, url)
    return message

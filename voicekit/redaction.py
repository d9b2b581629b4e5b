"""Secrets out of what is shown: credentials inside URLs, in profiles, errors and logs.

A URL may carry a secret in two places: its userinfo (``postgresql://user:PASSWORD@host``)
and its query (``https://host/v1?key=SECRET``). :func:`redact_url` hides both, and does so
for malformed URLs too (a password holding ``/`` or ``@``, a bracket left open), since the
malformed ones are exactly those that end up in error messages. :func:`redact_text` does
it for every URL inside a text, and hides given secret values wherever they appear.

The ground floor: imports nothing from voicekit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>`]+")
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s\"']*)")
_SECRET_WORDS = frozenset(
    {"key", "pwd", "pass", "sig", "signature", "auth", "authorization", "credential", "credentials", "token"}
)
_SECRET_PARTS = ("password", "passwd", "secret", "apikey", "api_key", "access_key", "private_key")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter (or similar) named ``name`` holds a secret:
    ``key``, ``api_key``, ``apiKey``, ``access_token``, ``X-Amz-Signature``, ``sslpassword``…"""
    lowered = unquote(name).lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    words = re.split(r"[_\-.\[\]]", lowered)
    return bool(_SECRET_WORDS.intersection(words)) or any(word.endswith("token") for word in words)


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """``(scheme://, userinfo, rest)`` when the URL has a userinfo part. The userinfo ends at
    the *last* ``@``: a password may hold ``@`` or ``/`` when it was not percent-encoded."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, after = rest.rpartition("@")
    return head + sep, userinfo, after


def url_secrets(url: str) -> list[str]:
    """The secret values inside ``url`` (its password, secret query values), as written and
    percent-decoded, so they can be hidden wherever an error message repeats them."""
    found: list[str] = []
    parts = _split_userinfo(url)
    if parts is not None:
        _, userinfo, _ = parts
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        found.append(secret)
        # a parser that splits at the first "@" takes the rest for the host and may quote it
        pieces = secret.split("@")
        found += ["@".join(pieces[:i]) for i in range(1, len(pieces))]
        found += [piece + "@" for piece in pieces[1:]]
    found += [value for _, name, value in _QUERY_PARAM.findall(url) if is_secret_name(name)]
    secrets = {s for s in found if s}
    secrets |= {unquote(s) for s in secrets}
    return sorted((s for s in secrets if len(s) >= 3 or (len(s) >= 2 and s.endswith("@"))), key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (the user name stays)."""
    parts = _split_userinfo(url)
    if parts is not None:
        scheme, userinfo, after = parts
        user, colon, _ = userinfo.partition(":")
        url = f"{scheme}{user}:{MASK}@{after}" if colon else f"{scheme}{MASK}@{after}"
    return _QUERY_PARAM.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret_name(m.group(2)) and m.group(3) else m.group(0), url
    )


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it redacted, and each of ``secrets`` (and the secrets of
    those URLs) hidden wherever it appears."""
    hidden = set(secrets)
    for match in _URL.finditer(text):
        hidden.update(url_secrets(match.group(0)))
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for secret in sorted((s for s in hidden if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URLs in every record's message (attach it to a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

"""Credentials inside URLs never reach the screen: profiles, errors (``-v`` included) and logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.cli_helpers import voicekit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:pa55word@proxy.example/v1", "https://alice:***@proxy.example/v1"),
        ("https://host/v1beta?key=AIzaSyXYZ&alt=sse", "https://host/v1beta?key=***&alt=sse"),
        ("wss://api.example/ws?access_token=tok123&model=nova", "wss://api.example/ws?access_token=***&model=nova"),
        ("https://bucket/o?X-Amz-Signature=abcdef&X-Amz-Date=1", "https://bucket/o?X-Amz-Signature=***&X-Amz-Date=1"),
        ("postgresql://bob:s3cret/pw@db/ledger", "postgresql://bob:***@db/ledger"),  # an unencoded '/'
        ("postgresql://bob:s3cret@pw@db/ledger", "postgresql://bob:***@db/ledger"),  # an unencoded '@'
        ("postgres://bob:s3cretpw@[::1/db", "postgres://bob:***@[::1/db"),  # a bracket left open
        ("https://TOKEN123@host/", "https://***@host/"),
        ("https://host/path?max_tokens=5&model=x", "https://host/path?max_tokens=5&model=x"),
        ("http://localhost:8000/ws", "http://localhost:8000/ws"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from voicekit.redaction import redact_url

    assert redact_url(url) == shown


def test_redact_text_hides_the_secrets_of_every_url_wherever_they_are_repeated() -> None:
    from voicekit.redaction import redact_text

    text = 'cannot reach postgresql://bob:s3cret%zzpw@db/x: invalid percent-encoded token: "s3cret%zzpw"'
    assert redact_text(text) == 'cannot reach postgresql://bob:***@db/x: invalid percent-encoded token: "***"'
    assert redact_text("nothing here, http://localhost:8000/") == "nothing here, http://localhost:8000/"
    assert redact_text("the key abc123 leaked", secrets=["abc123"]) == "the key *** leaked"


def test_log_records_are_redacted() -> None:
    from voicekit.redaction import RedactingFilter

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "could not reach %s", ("https://u:pw123@h/",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "could not reach https://u:***@h/"


def test_profiles_show_redacts_credentials_inside_urls(tmp_path: Path) -> None:
    profile = tmp_path / "proxied.yaml"
    profile.write_text(
        "extends: offline\n"
        'llm: {use: gemini, base_url: "https://alice:pa55word@proxy.example/v1?key=AIzaSyXYZ&alt=sse"}\n'
    )
    result = voicekit("profiles", "show", str(profile))
    assert result.returncode == 0, result.stderr
    assert "base_url: https://alice:***@proxy.example/v1?key=***&alt=sse" in result.stdout
    assert "pa55word" not in result.stdout and "AIzaSyXYZ" not in result.stdout


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:hunter22pw@localhost:notaport/db",
        "postgresql://bob:hunter22/pw@localhost/db",
        "postgresql://bob:hunter22@pw@127.0.0.1:1/db",
        "postgres://bob:hunter22pw@[::1/db",
        "postgresql://bob:hunter22%zzpw@localhost/db",
        "postgresql://bob@localhost:1/db?password=hunter22pw",
    ],
)
@pytest.mark.parametrize("verbose", [False, True])
def test_a_malformed_ledger_url_never_shows_its_password(url: str, verbose: bool) -> None:
    result = voicekit(*(["-v"] if verbose else []), "sessions", "list", env={"VOICEKIT_LEDGER_URL": url})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "VOICEKIT_LEDGER_URL" in output
    assert "hunter22" not in output and "pw@" not in output, output

"""Tokens and secrets: what must be rejected, and where secrets must never appear."""

from __future__ import annotations

import logging
import re

import pytest

from micforge.auth import AuthDB
from micforge.auth.credentials import TOKEN_BODY_CHARS, new_token_secret
from micforge.errors import Unauthorized, Unavailable


@pytest.fixture
def user_and_secret(auth_db: AuthDB):
    user = auth_db.create_user("ada@example.org")
    _, secret = auth_db.create_token(user.id, "laptop")
    return user, secret


def test_token_format_carries_256_bits() -> None:
    secrets = {new_token_secret() for _ in range(500)}
    assert len(secrets) == 500
    assert all(re.fullmatch(r"mic_[0-9A-Za-z]{43}", s) for s in secrets)
    # 43 base62 digits hold 256 bits; the leading digit must vary too (not padding).
    assert 62**TOKEN_BODY_CHARS >= 2**256 > 62 ** (TOKEN_BODY_CHARS - 1)
    assert len({s[4] for s in secrets}) > 5


def _mutations(secret: str) -> list[str]:
    body = secret[len("mic_") :]
    flipped = "A" if body[-1] != "A" else "B"
    return [
        "",
        "mic_",
        secret[:-1],  # too short
        secret + "0",  # too long
        "ghp_" + body,  # wrong prefix
        "MIC_" + body,
        body,  # no prefix
        "mic_" + body[:-1] + flipped,  # well formed, unknown
        "mic_" + "0" * TOKEN_BODY_CHARS,
        "mic_" + body[:-1] + "é",  # non-ASCII
        "mic_" + body[:-1] + "-",
        " " + secret,
        secret + "\n",
        "Bearer " + secret,
    ]


def test_malformed_wrong_prefix_and_unknown_tokens_are_rejected(
    auth_db: AuthDB, user_and_secret
) -> None:
    _, secret = user_and_secret
    for candidate in _mutations(secret):
        with pytest.raises(Unauthorized) as caught:
            auth_db.verify_token(candidate)
        assert secret not in caught.value.message
    for candidate in (None, 123, secret.encode()):
        with pytest.raises(Unauthorized):
            auth_db.verify_token(candidate)  # type: ignore[arg-type]


def test_the_secret_is_not_stored(auth_db: AuthDB, user_and_secret) -> None:
    _, secret = user_and_secret
    rows = auth_db._db.execute_sql("SELECT * FROM tokens").fetchall()
    assert rows and secret not in repr(rows) and secret[4:] not in repr(rows)


def test_no_secret_in_logs_or_reprs(auth_db: AuthDB, caplog: pytest.LogCaptureFixture) -> None:
    password = "s3cret-passphrase"
    with caplog.at_level(logging.DEBUG):  # peewee logs every query and its parameters at DEBUG
        user = auth_db.create_user("ada@example.org", password=password)
        info, secret = auth_db.create_token(user.id, "laptop", expires_in_days=3)
        verified, token = auth_db.authenticate(secret)
        auth_db.check_password("ada@example.org", password)
        listed = auth_db.list_tokens(user.id)
        auth_db.revoke_token(user.id, info.id)
        with pytest.raises(Unauthorized) as revoked:
            auth_db.verify_token(secret)
        with pytest.raises(Unauthorized) as wrong:
            auth_db.check_password("ada@example.org", password + "!")
    assert caplog.records, "DEBUG logging was captured"
    shown = caplog.text + repr(
        (user, info, verified, token, listed, auth_db, revoked.value, wrong.value)
    )
    for value in (secret, secret[4:], password):
        assert value not in shown


def test_postgres_password_is_not_shown_when_unreachable() -> None:
    # Port 1 on loopback refuses at once: Unavailable, and the URL's password stays hidden.
    with pytest.raises(Unavailable) as caught:
        AuthDB.open("postgresql://micforge:hunter2@127.0.0.1:1/auth", connect_timeout_s=2)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(caught.value)


def test_redacted_repr_for_postgres_url(postgres_url: str) -> None:
    url = postgres_url.replace("micforge@", "micforge:hunter2@")
    assert "hunter2" in url
    auth_db = AuthDB.open(url)  # trust auth accepts any password
    try:
        assert "hunter2" not in repr(auth_db) and "***" in repr(auth_db)
        auth_db.ping()
    finally:
        auth_db.close()

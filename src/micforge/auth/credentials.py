"""Secrets: API token format and hashing, password hashing (scrypt).

Tokens carry 256 bits of randomness, so a fast hash (SHA-256) of the whole
token is a safe lookup key: nobody can brute-force a preimage, and the
database never holds anything that authenticates. Passwords are low-entropy,
so they get a memory-hard KDF (scrypt, standard library) with a random salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "mic_"
TOKEN_RANDOM_BYTES = 32  # 256 bits
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 62**43 > 2**256 > 62**42: every 32-byte value fits in exactly 43 digits.
TOKEN_BODY_CHARS = 43
_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}[0-9A-Za-z]{{{TOKEN_BODY_CHARS}}}")


def new_token_secret() -> str:
    value = int.from_bytes(secrets.token_bytes(TOKEN_RANDOM_BYTES), "big")
    digits = []
    for _ in range(TOKEN_BODY_CHARS):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return TOKEN_PREFIX + "".join(reversed(digits))


def is_well_formed_token(secret: object) -> bool:
    return isinstance(secret, str) and _TOKEN_RE.fullmatch(secret) is not None


def token_lookup_hash(secret: str) -> str:
    """The stored (indexed) form of a token: SHA-256, lowercase hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_id(prefix: str) -> str:
    """Opaque ids such as ``u_3f9c0a1b2c3d4e5f`` (64 random bits)."""
    return prefix + secrets.token_hex(8)


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost. The default (n=2**15, r=8) needs 32 MiB and ~50-100 ms;
    tests pass a tiny ``n`` through AuthDB's constructor, never a global."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two >= 2")


_SALT_BYTES = 16
_KEY_BYTES = 32


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        dklen=_KEY_BYTES,
        # OpenSSL's default cap (32 MiB) is exactly what n=2**15, r=8 needs, plus overhead.
        maxmem=256 * params.n * params.r + 1024 * 1024,
    )


def hash_password(password: str, params: ScryptParams) -> str:
    """Self-describing: ``scrypt$n$r$p$salt$key`` (base64), so costs can rise later."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, params)
    b64 = base64.b64encode
    return f"scrypt${params.n}${params.r}${params.p}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str | None, params: ScryptParams) -> bool:
    """Constant-time check. With ``stored=None`` (unknown user, or no password)
    it still spends one KDF so that timing does not reveal which emails exist."""
    if stored is None:
        _scrypt(password, b"\0" * _SALT_BYTES, params)
        return False
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        stored_params = ScryptParams(int(n), int(r), int(p))
        salt, key = base64.b64decode(salt_b64), base64.b64decode(key_b64)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(_scrypt(password, salt, stored_params), key)

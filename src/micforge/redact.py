"""URLs fit for printing and logging: settings may carry secrets (an auth DB password)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters libpq (and so psycopg) takes as secrets.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def has_secret(url: str) -> bool:
    """Whether ``url`` carries a password, in its user info or its query."""
    parts = urlsplit(url)
    if parts.password is not None:
        return True
    return any(key in _SECRET_PARAMS for key, _ in parse_qsl(parts.query, keep_blank_values=True))


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (user info and query alike)."""
    if not has_secret(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = urlencode(
        [
            (key, MASK if key in _SECRET_PARAMS else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))

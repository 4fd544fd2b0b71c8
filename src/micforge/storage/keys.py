"""The object layout of DESIGN.md. No other module builds a key string.

Keys are relative to the store's root (a store adds its own prefix, such as
the ``s3://bucket/prefix`` prefix). Callers pass validated values.
"""

from __future__ import annotations

POSITION_DIGITS = 20
ROLLUP_LEVELS = {1: 100, 2: 10_000, 3: 1_000_000}  # level -> landings per rollup window
AUTH_BACKUP_PREFIX = "auth/backups/"


def project_prefix(project: str) -> str:
    return f"projects/{project}/"


def head(project: str) -> str:
    return f"projects/{project}/head"


def log_prefix(project: str) -> str:
    return f"projects/{project}/log/"


def log(project: str, position: int) -> str:
    if position < 1:
        raise ValueError(f"log positions start at 1, got {position}")
    return f"projects/{project}/log/{position:0{POSITION_DIGITS}d}"


def position_of_log_key(key: str) -> int:
    return int(key.rsplit("/", 1)[1])


def rollup(project: str, level: int, start: int) -> str:
    """Rollup of level ``level`` covering positions [start, start + ROLLUP_LEVELS[level])."""
    if level not in ROLLUP_LEVELS:
        raise ValueError(f"no rollup level {level}")
    return f"projects/{project}/rollups/L{level}/{start:0{POSITION_DIGITS}d}"


def sessions_prefix(project: str) -> str:
    return f"projects/{project}/sessions/"


def session(project: str, session_id: str) -> str:
    return f"projects/{project}/sessions/{session_id}"


def tree_node(project: str, hash_hex: str) -> str:
    return f"projects/{project}/trees/{hash_hex[:2]}/{hash_hex}"


def blob(project: str, hash_hex: str) -> str:
    return f"projects/{project}/blobs/{hash_hex[:2]}/{hash_hex}"


def auth_backup(name: str) -> str:
    return f"{AUTH_BACKUP_PREFIX}{name}"


def is_immutable(key: str) -> bool:
    """True for content-addressed or write-once objects, the only ones a cache may serve."""
    parts = key.split("/")
    return (
        len(parts) >= 4
        and parts[0] == "projects"
        and parts[2] in {"trees", "blobs", "log", "rollups"}
    )

"""The landing invariants of issue #7, checked against what is really in the store."""

from __future__ import annotations

from micforge.auth import User
from micforge.service import Services
from micforge.storage import keys


def check_invariants(
    services: Services, project: str, reader: User, outcomes: dict[str, object]
) -> None:
    """``outcomes``: session id -> ("landed", position) | ("conflict", [paths]) | None (unknown)."""
    tip = services.history.tip(project)
    log_keys = services.store.list(keys.log_prefix(project))
    positions = [keys.position_of_log_key(k) for k in log_keys]
    assert positions == list(range(1, tip + 1)), "positions must be exactly 1..n with no gap"

    records = services.history.records(project, positions)
    landed_ids = [r.session_id.hex() for r in records]
    assert len(set(landed_ids)) == len(landed_ids), "a session appears in the log more than once"
    position_of = {sid: r.position for sid, r in zip(landed_ids, records, strict=True)}

    sessions = {
        sid: services.sessions.get(reader, project, sid) for sid in set(outcomes) | set(landed_ids)
    }
    for sid, outcome in outcomes.items():
        session = sessions[sid]
        if outcome is None:
            continue
        kind, value = outcome  # type: ignore[misc]
        if kind == "landed":
            assert position_of.get(sid) == value, (
                f"session {sid} told landed at {value}, log says {position_of.get(sid)}"
            )
        else:
            assert sid not in position_of, f"session {sid} was told 'conflict' but is in the log"
            later = set()
            for r in records[session["base_position"] :]:
                later.update(r.paths)
            mine = {op["path"] for op in session["operations"]}
            # A file/directory collision: one of the session's paths, and a file
            # above it or an entry below it.
            collision = any(
                b.startswith(a + "/") and (a in mine or b in mine) for a in value for b in value
            )
            assert set(value) and (set(value) <= later or collision), (
                f"conflict paths {value} neither intersect landings after base nor collide"
            )

    for sid, position in position_of.items():
        session = sessions[sid]
        assert session["state"] == "landed" and session["landed_position"] == position, (
            f"session {sid} is in the log at {position} but its state is {session['state']}"
        )
        mine = set(records[position - 1].paths)
        for r in records[session["base_position"] : position - 1]:
            assert not mine & set(r.paths), (
                f"landing {position} intersects landing {r.position} after its base"
            )
        assert mine == {op["path"] for op in session["operations"]}

    # The final tree equals a sequential replay of the log.
    replay: dict[str, str] = {}
    for r in records:
        for op in sessions[r.session_id.hex()]["operations"]:
            if op["op"] == "write":
                replay[op["path"]] = op["blob_hash"]
            else:
                replay.pop(op["path"], None)
    listed: dict[str, str] = {}
    cursor = None
    while True:
        page = services.content.tree(reader, project, limit=1000, cursor=cursor)
        listed.update({e["path"]: e["blob_hash"] for e in page["entries"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == replay, "the tree at the tip differs from a replay of the log"
    for path in listed:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            assert "/".join(parts[:depth]) not in listed, f"{path} lies below a file"

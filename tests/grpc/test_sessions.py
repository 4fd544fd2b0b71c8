"""The whole session flow over gRPC: start, record, land, conflict, rebase, abandon, and reads."""

from __future__ import annotations

import json

import grpc
import pytest

from micforge.api.grpc.gen.micforge.v1 import content_pb2, sessions_pb2
from micforge.core import blob_hash
from tests.grpc.conftest import PROJECT, GrpcEnv, trailers

Op = sessions_pb2.Operation


def _start(env: GrpcEnv, goal: str, who: str = "owner") -> sessions_pb2.Session:
    return env.sessions.StartSession(
        sessions_pb2.StartSessionRequest(project=PROJECT, goal=goal), metadata=env.auth(who)
    )


def _record(env: GrpcEnv, sid: str, *ops: sessions_pb2.Operation) -> sessions_pb2.Session:
    return env.sessions.RecordOperations(
        sessions_pb2.RecordOperationsRequest(project=PROJECT, session_id=sid, operations=ops),
        metadata=env.auth(),
    )


def _land(env: GrpcEnv, sid: str) -> sessions_pb2.LandSessionResponse:
    return env.sessions.LandSession(
        sessions_pb2.LandSessionRequest(project=PROJECT, session_id=sid), metadata=env.auth()
    )


def test_the_whole_session_flow(env: GrpcEnv) -> None:
    readme = env.put_blob(b"# hello\n").hash
    main = env.put_blob(b"print('hi')\n").hash

    started = _start(env, "add a readme")
    assert started.state == "open"
    assert started.project == PROJECT
    assert started.goal == "add a readme"
    assert started.owner == env.owner.id
    assert started.base_position == 0
    assert not started.HasField("landed_position")
    assert len(started.id) == 32
    sid = started.id

    recorded = _record(
        env,
        sid,
        Op(op="write", path="README.md", blob_hash=readme),
        Op(op="write", path="bin/main", blob_hash=main, mode="exec"),
        Op(op="write", path="README.md", blob_hash=main),  # replaces the first op on that path
    )
    assert [(o.op, o.path, o.blob_hash, o.mode) for o in recorded.operations] == [
        ("write", "README.md", main, "file"),
        ("write", "bin/main", main, "exec"),
    ]
    recorded = _record(env, sid, Op(op="write", path="README.md", blob_hash=readme))
    env.sessions.RecordDecision(
        sessions_pb2.RecordDecisionRequest(
            project=PROJECT, session_id=sid, content="keep it short"
        ),
        metadata=env.auth(),
    )
    after_talk = env.sessions.RecordConversation(
        sessions_pb2.RecordConversationRequest(
            project=PROJECT, session_id=sid, role="agent", content="done"
        ),
        metadata=env.auth(),
    )
    assert [d.content for d in after_talk.decisions] == ["keep it short"]
    assert [(m.role, m.content) for m in after_talk.conversation] == [("agent", "done")]
    assert after_talk.conversation[0].at.endswith("Z")

    fetched = env.sessions.GetSession(
        sessions_pb2.GetSessionRequest(project=PROJECT, session_id=sid), metadata=env.auth()
    )
    assert fetched == after_talk

    listed = env.sessions.ListSessions(
        sessions_pb2.ListSessionsRequest(project=PROJECT, state="open"), metadata=env.auth()
    )
    assert [s.id for s in listed.sessions] == [sid]
    assert not listed.HasField("next_cursor")

    landed = _land(env, sid)
    assert landed.position == 1
    assert landed.session.state == "landed"
    assert landed.session.landed_position == 1
    # Landing again answers with the original position and lands nothing new.
    assert _land(env, sid).position == 1

    head = env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth())
    assert (head.position, head.tree_hash) == (1, landed.tree_hash)

    tree = env.content.GetTree(content_pb2.GetTreeRequest(project=PROJECT), metadata=env.auth())
    assert [(e.path, e.blob_hash, e.mode, e.size) for e in tree.entries] == [
        ("README.md", readme, "file", 8),
        ("bin/main", main, "exec", 12),
    ]
    only_bin = env.content.GetTree(
        content_pb2.GetTreeRequest(project=PROJECT, prefix="bin/"), metadata=env.auth()
    )
    assert [e.path for e in only_bin.entries] == ["bin/main"]
    paged = env.content.GetTree(
        content_pb2.GetTreeRequest(project=PROJECT, limit=1), metadata=env.auth()
    )
    assert [e.path for e in paged.entries] == ["README.md"] and paged.HasField("next_cursor")
    empty_then = env.content.GetTree(
        content_pb2.GetTreeRequest(project=PROJECT, at=0), metadata=env.auth()
    )
    assert (empty_then.position, list(empty_then.entries)) == (0, [])

    log = env.content.GetLog(content_pb2.GetLogRequest(project=PROJECT), metadata=env.auth())
    assert [(x.position, x.session_id, x.goal, x.owner) for x in log.landings] == [
        (1, sid, "add a readme", env.owner.id)
    ]
    assert list(log.landings[0].paths) == ["README.md", "bin/main"]
    assert not log.HasField("next")

    diff = env.content.Diff(
        content_pb2.DiffRequest(project=PROJECT, from_position=0, to_position=1),
        metadata=env.auth(),
    )
    assert [(c.path, c.change, c.HasField("old_hash"), c.new_hash) for c in diff.changes] == [
        ("README.md", "added", False, readme),
        ("bin/main", "added", False, main),
    ]

    # The readme's content, read back through the tree.
    chunks = env.get_blob(tree.entries[0].blob_hash)
    assert b"".join(c.data for c in chunks) == b"# hello\n"
    assert tree.entries[0].blob_hash == blob_hash(b"# hello\n").hex()


def test_conflict_is_aborted_with_the_paths_then_rebase_lands(env: GrpcEnv) -> None:
    one = env.put_blob(b"one").hash
    two = env.put_blob(b"two").hash
    first = _start(env, "first").id
    second = _start(env, "second").id
    _record(env, first, Op(op="write", path="shared.txt", blob_hash=one))
    _record(
        env,
        second,
        Op(op="write", path="shared.txt", blob_hash=two),
        Op(op="write", path="other.txt", blob_hash=two),
    )
    assert _land(env, first).position == 1

    with pytest.raises(grpc.RpcError) as raised:
        _land(env, second)
    assert raised.value.code() == grpc.StatusCode.ABORTED
    meta = trailers(raised.value)
    assert meta["mic-error-code"] == "conflict"
    assert json.loads(meta["mic-conflict-paths"]) == ["shared.txt"]
    assert "shared.txt" in raised.value.details()

    conflicted = env.sessions.GetSession(
        sessions_pb2.GetSessionRequest(project=PROJECT, session_id=second), metadata=env.auth()
    )
    assert conflicted.state == "conflicted"
    assert list(conflicted.conflict_paths) == ["shared.txt"]

    rebased = env.sessions.RebaseSession(
        sessions_pb2.RebaseSessionRequest(project=PROJECT, session_id=second), metadata=env.auth()
    )
    assert (rebased.state, rebased.base_position) == ("open", 1)
    assert len(rebased.operations) == 2  # kept across the rebase
    assert _land(env, second).position == 2


def test_a_file_that_would_also_be_a_directory_is_aborted_with_both_paths(env: GrpcEnv) -> None:
    blob = env.put_blob(b"content").hash
    first = _start(env, "a file named lib").id
    _record(env, first, Op(op="write", path="lib", blob_hash=blob))
    assert _land(env, first).position == 1
    second = _start(env, "a module below it").id
    _record(env, second, Op(op="write", path="lib/mod.py", blob_hash=blob))

    with pytest.raises(grpc.RpcError) as raised:
        _land(env, second)
    assert raised.value.code() == grpc.StatusCode.ABORTED
    meta = trailers(raised.value)
    assert meta["mic-error-code"] == "conflict"
    assert json.loads(meta["mic-conflict-paths"]) == ["lib", "lib/mod.py"]
    assert "a file would also be a directory" in raised.value.details()
    conflicted = env.sessions.GetSession(
        sessions_pb2.GetSessionRequest(project=PROJECT, session_id=second), metadata=env.auth()
    )
    assert (conflicted.state, list(conflicted.conflict_paths)) == (
        "conflicted",
        ["lib", "lib/mod.py"],
    )


def test_abandoned_session_refuses_records_with_failed_precondition(env: GrpcEnv) -> None:
    sid = _start(env, "never mind").id
    abandoned = env.sessions.AbandonSession(
        sessions_pb2.AbandonSessionRequest(project=PROJECT, session_id=sid), metadata=env.auth()
    )
    assert abandoned.state == "abandoned"
    with pytest.raises(grpc.RpcError) as raised:
        env.sessions.RecordDecision(
            sessions_pb2.RecordDecisionRequest(project=PROJECT, session_id=sid, content="x"),
            metadata=env.auth(),
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert trailers(raised.value)["mic-error-code"] == "invalid_state"


@pytest.mark.parametrize(
    "ops, needle",
    [
        ([Op(op="write", path="../escape", blob_hash="0" * 64)], "'..'"),
        ([Op(op="write", path="a.txt", blob_hash="0" * 64)], "0" * 64),  # not stored here
        ([Op(op="rename", path="a.txt")], "rename"),
        ([], "operations"),
    ],
    ids=["traversal", "unknown-blob", "unknown-op", "no-ops"],
)
def test_bad_operations_are_invalid_argument_and_change_nothing(
    env: GrpcEnv, ops: list, needle: str
) -> None:
    sid = _start(env, "bad input").id
    with pytest.raises(grpc.RpcError) as raised:
        _record(env, sid, *ops)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in raised.value.details()
    session = env.sessions.GetSession(
        sessions_pb2.GetSessionRequest(project=PROJECT, session_id=sid), metadata=env.auth()
    )
    assert list(session.operations) == []


def test_unknown_and_malformed_session_ids(env: GrpcEnv) -> None:
    for session_id, code in (
        ("0" * 32, grpc.StatusCode.NOT_FOUND),
        ("not-a-session", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            env.sessions.GetSession(
                sessions_pb2.GetSessionRequest(project=PROJECT, session_id=session_id),
                metadata=env.auth(),
            )
        assert raised.value.code() == code


def test_list_sessions_pages_with_a_cursor(env: GrpcEnv) -> None:
    ids = {_start(env, f"goal {i}").id for i in range(3)}
    seen: list[str] = []
    request = sessions_pb2.ListSessionsRequest(project=PROJECT, limit=2)
    for _ in range(3):
        page = env.sessions.ListSessions(request, metadata=env.auth())
        seen += [s.id for s in page.sessions]
        if not page.HasField("next_cursor"):
            break
        request = sessions_pb2.ListSessionsRequest(
            project=PROJECT, limit=2, cursor=page.next_cursor
        )
    assert sorted(seen) == sorted(ids)
    with pytest.raises(grpc.RpcError) as raised:
        env.sessions.ListSessions(
            sessions_pb2.ListSessionsRequest(project=PROJECT, limit=-1), metadata=env.auth()
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_conflict_on_thousands_of_paths_reaches_a_client_with_default_limits(
    env: GrpcEnv,
) -> None:
    # grpcio's default client refuses trailers over 8 KiB (16 KiB hard), and other
    # clients drop the call: the trailer and message are cut to fit, with the count.
    blob = env.put_blob(b"x").hash
    paths = [f"d/{n:05d}-" + "y" * 40 + ".txt" for n in range(1500)]
    first = _start(env, "first").id
    second = _start(env, "second").id
    for sid in (first, second):
        _record(env, sid, *[Op(op="write", path=p, blob_hash=blob) for p in paths])
    assert _land(env, first).position == 1
    with pytest.raises(grpc.RpcError) as raised:
        _land(env, second)
    assert raised.value.code() == grpc.StatusCode.ABORTED
    meta = trailers(raised.value)
    assert meta["mic-error-code"] == "conflict" and meta["mic-conflict-count"] == "1500"
    listed = json.loads(meta["mic-conflict-paths"])
    assert 0 < len(listed) < 1500 and listed == sorted(paths)[: len(listed)]
    conflicted = env.sessions.GetSession(
        sessions_pb2.GetSessionRequest(project=PROJECT, session_id=second), metadata=env.auth()
    )
    assert len(conflicted.conflict_paths) == 1500  # the whole list, where it has room

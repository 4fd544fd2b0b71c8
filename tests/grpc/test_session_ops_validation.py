"""RecordOperations and ListSessions apply REST's rules: a delete carries no blob_hash and
no mode but "file", errors name the operation's index, the operations limit counts the
session, and a cursor belongs to one project's listing."""

from __future__ import annotations

import grpc
import pytest

from micforge.api.grpc.gen.micforge.v1 import sessions_pb2
from tests.grpc.conftest import PROJECT, GrpcEnv, trailers

Op = sessions_pb2.Operation
MISSING_HASH = "ef" * 32


def _start(env: GrpcEnv, project: str = PROJECT) -> str:
    request = sessions_pb2.StartSessionRequest(project=project, goal="g")
    return env.sessions.StartSession(request, metadata=env.auth()).id


def _record(env: GrpcEnv, sid: str, *ops: Op) -> sessions_pb2.Session:
    request = sessions_pb2.RecordOperationsRequest(project=PROJECT, session_id=sid, operations=ops)
    return env.sessions.RecordOperations(request, metadata=env.auth())


def _invalid(env: GrpcEnv, sid: str, *ops: Op) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        _record(env, sid, *ops)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value
    assert trailers(raised.value)["mic-error-code"] == "invalid_request"
    return raised.value.details()


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (Op(op="delete", path="d2", blob_hash="NOTAHASH"), "blob_hash"),
        (Op(op="delete", path="d2", blob_hash="ab" * 32), "blob_hash"),
        (Op(op="delete", path="d2", mode="exec"), "mode"),
        (Op(op="delete", path="d2", mode="bogus"), "mode"),
    ],
)
def test_a_delete_with_a_blob_hash_or_a_mode_is_invalid_and_records_nothing(
    env: GrpcEnv, bad: Op, needle: str
) -> None:
    sid = _start(env)
    details = _invalid(env, sid, Op(op="delete", path="d1"), bad)
    assert details.startswith("operations[1]: ") and needle in details, details
    request = sessions_pb2.GetSessionRequest(project=PROJECT, session_id=sid)
    assert list(env.sessions.GetSession(request, metadata=env.auth()).operations) == []


def test_a_delete_as_the_session_shows_it_records_again(env: GrpcEnv) -> None:
    sid = _start(env)
    shown = _record(env, sid, Op(op="delete", path="a")).operations
    assert [(o.op, o.path, o.blob_hash, o.mode) for o in shown] == [("delete", "a", "", "file")]
    assert list(_record(env, sid, *shown).operations) == list(shown)


def test_a_missing_blob_names_the_operations_index(env: GrpcEnv) -> None:
    present = env.put_blob(b"here\n").hash
    sid = _start(env)
    details = _invalid(
        env,
        sid,
        Op(op="write", path="a", blob_hash=present),
        Op(op="write", path="b", blob_hash=MISSING_HASH),
    )
    assert details.startswith("operations[1]: ") and MISSING_HASH in details, details


def test_the_operations_limit_counts_what_the_session_would_hold(make_grpc_env) -> None:
    env = make_grpc_env(operations_per_session_max=3)
    sid = _start(env)
    kept = _record(env, sid, *[Op(op="delete", path="same")] * 10)
    assert len(kept.operations) == 1
    assert (
        len(_record(env, sid, Op(op="delete", path="b"), Op(op="delete", path="c")).operations) == 3
    )
    with pytest.raises(grpc.RpcError) as raised:
        _record(env, sid, Op(op="delete", path="d"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(raised.value)["mic-error-code"] == "too_large"


def test_list_sessions_cursor_ends_with_the_last_match_and_belongs_to_its_project(
    env: GrpcEnv,
) -> None:
    env.services.auth.create_project("p2", env.owner.id)
    first, _, third, _ = (_start(env) for _ in range(4))  # the last one stays open
    for sid in (first, third):
        request = sessions_pb2.AbandonSessionRequest(project=PROJECT, session_id=sid)
        env.sessions.AbandonSession(request, metadata=env.auth())
    listed = env.sessions.ListSessions(
        sessions_pb2.ListSessionsRequest(project=PROJECT, state="abandoned", limit=2),
        metadata=env.auth(),
    )
    assert [s.id for s in listed.sessions] == [first, third]
    assert not listed.HasField("next_cursor")

    for _ in range(2):
        _start(env, "p2")
    other = env.sessions.ListSessions(
        sessions_pb2.ListSessionsRequest(project="p2", limit=1), metadata=env.auth()
    )
    assert other.HasField("next_cursor")
    with pytest.raises(grpc.RpcError) as raised:
        env.sessions.ListSessions(
            sessions_pb2.ListSessionsRequest(project=PROJECT, cursor=other.next_cursor),
            metadata=env.auth(),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_error_echoing_a_long_non_ascii_path_still_reaches_a_default_client(
    env: GrpcEnv,
) -> None:
    # A 4,095-byte path of 3-byte characters with an empty segment: the error echoes
    # it, and grpc-message percent-encodes each byte (x3), past grpcio's 8 KiB limit.
    path = "é" * 1000 + "//" + "漢" * 697
    assert len(path.encode()) <= 4096
    sid = env.sessions.StartSession(
        sessions_pb2.StartSessionRequest(project=PROJECT, goal="g"), metadata=env.auth()
    ).id
    with pytest.raises(grpc.RpcError) as raised:
        env.sessions.RecordOperations(
            sessions_pb2.RecordOperationsRequest(
                project=PROJECT,
                session_id=sid,
                operations=[sessions_pb2.Operation(op="delete", path=path)],
            ),
            metadata=env.auth(),
            timeout=30,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert "empty segment" in raised.value.details()

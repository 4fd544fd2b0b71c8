"""Servicers: thin adapters from gRPC messages to the service layer (the same one REST uses).

Each method reads its request, calls one service method with the caller the
AuthInterceptor put on the context, and converts the API.md-shaped dict it
gets back into the matching message. No authentication, no status codes and
no business rules here: those live in interceptors.py and micforge.service.

Proto3 cannot tell an unset string or number from an empty one, so the
request conventions are: empty string = not given, 0 limit = server default;
fields that need a real "unset" (positions) are `optional` in the .proto.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from micforge import validate
from micforge.api.grpc.gen.micforge.v1 import (
    content_pb2,
    content_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
)
from micforge.errors import InvalidRequest

if TYPE_CHECKING:
    from micforge.api.grpc.interceptors import CallContext, RpcMetrics
    from micforge.service import Services


# Every message type of our protos by full name, to build nested messages.
_MESSAGE_CLASSES: dict[str, type[Message]] = {
    descriptor.full_name: getattr(module, name)
    for module in (sessions_pb2, content_pb2)
    for name, descriptor in module.DESCRIPTOR.message_types_by_name.items()
}


def from_view(view: dict[str, Any], message_class: type[Message]) -> Any:
    """A ``message_class`` built from a service-layer view (API.md's JSON shape, which the .proto mirrors).

    Unknown keys are ignored so the service may add fields before the .proto
    does; ``None`` leaves the field unset (that is how `optional` fields say
    null). Built with the message constructors (C code) rather than
    ``json_format.ParseDict`` (Python, ~7x slower: 0.8 s for a session of
    100,000 operations).
    """
    fields = message_class.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for name, value in view.items():
        field = fields.get(name)
        if field is None or value is None:
            continue
        if field.message_type is not None:
            nested = _MESSAGE_CLASSES[field.message_type.full_name]
            if field.is_repeated:
                value = [from_view(item, nested) for item in value]
            else:
                value = from_view(value, nested)
        values[name] = value
    return message_class(**values)


def _session(view: dict[str, Any]) -> sessions_pb2.Session:
    return from_view(view, sessions_pb2.Session)


def _operation(op: sessions_pb2.Operation) -> dict[str, str]:
    # Only the fields the client set, as a REST client would send them, so
    # the service's one validator reports missing or misplaced fields.
    fields = {"op": op.op, "path": op.path}
    if op.blob_hash:
        fields["blob_hash"] = op.blob_hash
    if op.mode:
        fields["mode"] = op.mode
    return fields


def _positive_or_none(value: int, what: str) -> int | None:
    if value < 0:
        raise InvalidRequest(f"{what} must not be negative, got {value}")
    return value or None


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, services: Services) -> None:
        self._sessions = services.sessions
        self._landing = services.landing

    def StartSession(self, request: sessions_pb2.StartSessionRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        return _session(self._sessions.start(context.user, project, request.goal))

    def GetSession(self, request: sessions_pb2.GetSessionRequest, context: CallContext) -> Any:
        project, sid = _session_ref(request)
        return _session(self._sessions.get(context.user, project, sid))

    def ListSessions(self, request: sessions_pb2.ListSessionsRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        kwargs: dict[str, Any] = {"state": request.state or None, "cursor": request.cursor or None}
        limit = _positive_or_none(request.limit, "limit")
        if limit is not None:
            kwargs["limit"] = limit
        sessions, next_cursor = self._sessions.list(context.user, project, **kwargs)
        return from_view(
            {"sessions": sessions, "next_cursor": next_cursor},
            sessions_pb2.ListSessionsResponse,
        )

    def RecordOperations(
        self, request: sessions_pb2.RecordOperationsRequest, context: CallContext
    ) -> Any:
        project, sid = _session_ref(request)
        if not request.operations:
            raise InvalidRequest("operations must not be empty")
        ops = [_operation(op) for op in request.operations]
        return _session(self._sessions.record_operations(context.user, project, sid, ops))

    def RecordDecision(
        self, request: sessions_pb2.RecordDecisionRequest, context: CallContext
    ) -> Any:
        project, sid = _session_ref(request)
        view = self._sessions.record_decision(context.user, project, sid, request.content)
        return _session(view)

    def RecordConversation(
        self, request: sessions_pb2.RecordConversationRequest, context: CallContext
    ) -> Any:
        project, sid = _session_ref(request)
        view = self._sessions.record_conversation(
            context.user, project, sid, request.role, request.content
        )
        return _session(view)

    def LandSession(self, request: sessions_pb2.LandSessionRequest, context: CallContext) -> Any:
        project, sid = _session_ref(request)
        result = self._landing.land(context.user, project, sid)
        return from_view(result, sessions_pb2.LandSessionResponse)

    def AbandonSession(
        self, request: sessions_pb2.AbandonSessionRequest, context: CallContext
    ) -> Any:
        project, sid = _session_ref(request)
        return _session(self._sessions.abandon(context.user, project, sid))

    def RebaseSession(
        self, request: sessions_pb2.RebaseSessionRequest, context: CallContext
    ) -> Any:
        project, sid = _session_ref(request)
        return _session(self._sessions.rebase(context.user, project, sid))


def _session_ref(request: Any) -> tuple[str, str]:
    return validate.project_id(request.project), validate.session_id(request.session_id)


# How long an upload stream that ended without `last` waits to learn whether the
# call was cancelled (the iterator's end can arrive before the cancel event), so
# that the log and metrics say CANCELLED / DEADLINE_EXCEEDED rather than
# INVALID_ARGUMENT. Only a broken client (a half-close without `last`) waits it out.
_CANCEL_GRACE_S = 0.05


def _await_termination(context: CallContext, timeout_s: float) -> None:
    ended = threading.Event()
    if context.add_callback(ended.set):  # False: the call has already terminated
        ended.wait(timeout_s)


class ContentServicer(content_pb2_grpc.ContentServiceServicer):
    def __init__(self, services: Services, metrics: RpcMetrics, chunk_bytes: int) -> None:
        self._content = services.content
        self._blobs = services.blobs
        self._chunk_bytes = chunk_bytes
        self._bytes_in = metrics.blob_bytes.labels(direction="in")
        self._bytes_out = metrics.blob_bytes.labels(direction="out")

    def GetHead(self, request: content_pb2.GetHeadRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        return from_view(self._content.head(context.user, project), content_pb2.Head)

    def GetTree(self, request: content_pb2.GetTreeRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        kwargs: dict[str, Any] = {
            "prefix": validate.path_prefix(request.prefix),
            "at": request.at if request.HasField("at") else None,
            "cursor": request.cursor or None,
        }
        limit = _positive_or_none(request.limit, "limit")
        if limit is not None:
            kwargs["limit"] = limit
        view = self._content.tree(context.user, project, **kwargs)
        return from_view(view, content_pb2.GetTreeResponse)

    def GetLog(self, request: content_pb2.GetLogRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        kwargs: dict[str, Any] = {
            "from_position": request.from_position if request.HasField("from_position") else None
        }
        limit = _positive_or_none(request.limit, "limit")
        if limit is not None:
            kwargs["limit"] = limit
        view = self._content.log(context.user, project, **kwargs)
        return from_view(view, content_pb2.GetLogResponse)

    def Diff(self, request: content_pb2.DiffRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        to_position = request.to_position if request.HasField("to_position") else None
        view = self._content.diff(context.user, project, request.from_position, to_position)
        return from_view(view, content_pb2.DiffResponse)

    def StatBlob(self, request: content_pb2.StatBlobRequest, context: CallContext) -> Any:
        project = validate.project_id(request.project)
        size_bytes = self._blobs.stat(context.user, project, validate.hash_hex(request.hash))
        return content_pb2.StatBlobResponse(size=size_bytes)

    def GetBlob(self, request: content_pb2.GetBlobRequest, context: CallContext) -> Iterator[Any]:
        project = validate.project_id(request.project)
        hash_hex = validate.hash_hex(request.hash)
        size_bytes, chunks = self._blobs.open(
            context.user, project, hash_hex, chunk_bytes=self._chunk_bytes
        )
        try:
            first = True
            for data in chunks:
                # A cancelled call or a passed deadline leaves is_active False:
                # stop reading the store instead of producing unwanted chunks.
                if not context.is_active():
                    return
                if first:
                    yield content_pb2.BlobChunk(data=data, size=size_bytes)
                    first = False
                else:
                    yield content_pb2.BlobChunk(data=data)
                self._bytes_out.inc(len(data))
            if first:  # an empty blob still answers with its size
                yield content_pb2.BlobChunk(size=size_bytes)
        finally:
            # Releases the store reader at once, also when the client left mid-stream.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def PutBlob(
        self, request_iterator: Iterator[content_pb2.PutBlobRequest], context: CallContext
    ) -> Any:
        first = next(request_iterator, None)
        if first is None:
            raise InvalidRequest("PutBlob needs a first message naming the project")
        project = validate.project_id(first.project)
        expected_hash = (
            validate.hash_hex(first.expected_hash, "expected_hash") if first.expected_hash else None
        )
        expected_size = first.expected_size if first.HasField("expected_size") else None

        def chunks() -> Iterator[bytes]:
            # The service hashes, compresses and counts each chunk as it comes,
            # so the limit and the announced size are enforced as bytes arrive.
            message = first
            while True:
                data = message.data  # each access copies the bytes out of the message
                if data:
                    self._bytes_in.inc(len(data))
                    yield data
                if message.last:
                    break
                message = next(request_iterator, None)
                if message is None:
                    # grpc ends the request iterator the same way for a client's
                    # half-close and (racing its cancel event) for a cancelled or
                    # timed-out call, so only `last` proves the upload is whole.
                    _await_termination(context, _CANCEL_GRACE_S)
                    raise InvalidRequest(
                        "PutBlob stream ended without a message marked last; nothing was stored"
                    )
                if message.project or message.expected_hash or message.HasField("expected_size"):
                    raise InvalidRequest(
                        "only the first PutBlob message may set project, expected_size or expected_hash"
                    )
            if next(request_iterator, None) is not None:
                raise InvalidRequest("PutBlob messages after the one marked last")
            if not context.is_active():
                # The client left (cancelled, or its deadline passed) while its last bytes
                # were being taken in: it cannot learn the outcome, so store nothing.
                raise InvalidRequest("PutBlob call ended before the blob was stored")

        view, created = self._blobs.put_stream(
            context.user,
            project,
            chunks(),
            expected_size=expected_size,
            expected_hash=expected_hash,
        )
        return content_pb2.PutBlobResponse(hash=view["hash"], size=view["size"], created=created)

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Operation(_message.Message):
    __slots__ = ("op", "path", "blob_hash", "mode")
    OP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BLOB_HASH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    op: str
    path: str
    blob_hash: str
    mode: str
    def __init__(self, op: _Optional[str] = ..., path: _Optional[str] = ..., blob_hash: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("content", "at")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    content: str
    at: str
    def __init__(self, content: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...

class ConversationEntry(_message.Message):
    __slots__ = ("role", "content", "at")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    at: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "project", "goal", "state", "owner", "base_position", "landed_position", "operations", "decisions", "conversation", "created_at", "updated_at", "conflict_paths")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BASE_POSITION_FIELD_NUMBER: _ClassVar[int]
    LANDED_POSITION_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_PATHS_FIELD_NUMBER: _ClassVar[int]
    id: str
    project: str
    goal: str
    state: str
    owner: str
    base_position: int
    landed_position: int
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    conversation: _containers.RepeatedCompositeFieldContainer[ConversationEntry]
    created_at: str
    updated_at: str
    conflict_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., goal: _Optional[str] = ..., state: _Optional[str] = ..., owner: _Optional[str] = ..., base_position: _Optional[int] = ..., landed_position: _Optional[int] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., conversation: _Optional[_Iterable[_Union[ConversationEntry, _Mapping]]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., conflict_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("project", "goal")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    project: str
    goal: str
    def __init__(self, project: _Optional[str] = ..., goal: _Optional[str] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("project", "session_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("project", "state", "limit", "cursor")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    project: str
    state: str
    limit: int
    cursor: str
    def __init__(self, project: _Optional[str] = ..., state: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_cursor")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_cursor: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class RecordOperationsRequest(_message.Message):
    __slots__ = ("project", "session_id", "operations")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ...) -> None: ...

class RecordDecisionRequest(_message.Message):
    __slots__ = ("project", "session_id", "content")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    content: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class RecordConversationRequest(_message.Message):
    __slots__ = ("project", "session_id", "role", "content")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    role: str
    content: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ..., role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class LandSessionRequest(_message.Message):
    __slots__ = ("project", "session_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class LandSessionResponse(_message.Message):
    __slots__ = ("position", "tree_hash", "session")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TREE_HASH_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    position: int
    tree_hash: str
    session: Session
    def __init__(self, position: _Optional[int] = ..., tree_hash: _Optional[str] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class AbandonSessionRequest(_message.Message):
    __slots__ = ("project", "session_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class RebaseSessionRequest(_message.Message):
    __slots__ = ("project", "session_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    session_id: str
    def __init__(self, project: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

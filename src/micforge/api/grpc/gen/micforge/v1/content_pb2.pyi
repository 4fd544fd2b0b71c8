from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetHeadRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class Head(_message.Message):
    __slots__ = ("position", "tree_hash", "updated_at")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TREE_HASH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    position: int
    tree_hash: str
    updated_at: str
    def __init__(self, position: _Optional[int] = ..., tree_hash: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class TreeEntry(_message.Message):
    __slots__ = ("path", "blob_hash", "mode", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BLOB_HASH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    blob_hash: str
    mode: str
    size: int
    def __init__(self, path: _Optional[str] = ..., blob_hash: _Optional[str] = ..., mode: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class GetTreeRequest(_message.Message):
    __slots__ = ("project", "prefix", "at", "limit", "cursor")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    project: str
    prefix: str
    at: int
    limit: int
    cursor: str
    def __init__(self, project: _Optional[str] = ..., prefix: _Optional[str] = ..., at: _Optional[int] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetTreeResponse(_message.Message):
    __slots__ = ("position", "tree_hash", "entries", "next_cursor")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TREE_HASH_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    position: int
    tree_hash: str
    entries: _containers.RepeatedCompositeFieldContainer[TreeEntry]
    next_cursor: str
    def __init__(self, position: _Optional[int] = ..., tree_hash: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[TreeEntry, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class Landing(_message.Message):
    __slots__ = ("position", "session_id", "goal", "owner", "tree_hash", "paths", "landed_at")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TREE_HASH_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    LANDED_AT_FIELD_NUMBER: _ClassVar[int]
    position: int
    session_id: str
    goal: str
    owner: str
    tree_hash: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    landed_at: str
    def __init__(self, position: _Optional[int] = ..., session_id: _Optional[str] = ..., goal: _Optional[str] = ..., owner: _Optional[str] = ..., tree_hash: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., landed_at: _Optional[str] = ...) -> None: ...

class GetLogRequest(_message.Message):
    __slots__ = ("project", "from_position", "limit")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    from_position: int
    limit: int
    def __init__(self, project: _Optional[str] = ..., from_position: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetLogResponse(_message.Message):
    __slots__ = ("landings", "next")
    LANDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    landings: _containers.RepeatedCompositeFieldContainer[Landing]
    next: int
    def __init__(self, landings: _Optional[_Iterable[_Union[Landing, _Mapping]]] = ..., next: _Optional[int] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("path", "change", "old_hash", "new_hash")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    OLD_HASH_FIELD_NUMBER: _ClassVar[int]
    NEW_HASH_FIELD_NUMBER: _ClassVar[int]
    path: str
    change: str
    old_hash: str
    new_hash: str
    def __init__(self, path: _Optional[str] = ..., change: _Optional[str] = ..., old_hash: _Optional[str] = ..., new_hash: _Optional[str] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("project", "from_position", "to_position")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    project: str
    from_position: int
    to_position: int
    def __init__(self, project: _Optional[str] = ..., from_position: _Optional[int] = ..., to_position: _Optional[int] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    def __init__(self, changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ...) -> None: ...

class GetBlobRequest(_message.Message):
    __slots__ = ("project", "hash")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    project: str
    hash: str
    def __init__(self, project: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("data", "size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    size: int
    def __init__(self, data: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...

class PutBlobRequest(_message.Message):
    __slots__ = ("project", "expected_size", "expected_hash", "data", "last")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HASH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    project: str
    expected_size: int
    expected_hash: str
    data: bytes
    last: bool
    def __init__(self, project: _Optional[str] = ..., expected_size: _Optional[int] = ..., expected_hash: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class PutBlobResponse(_message.Message):
    __slots__ = ("hash", "size", "created")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    hash: str
    size: int
    created: bool
    def __init__(self, hash: _Optional[str] = ..., size: _Optional[int] = ..., created: _Optional[bool] = ...) -> None: ...

class StatBlobRequest(_message.Message):
    __slots__ = ("project", "hash")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    project: str
    hash: str
    def __init__(self, project: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class StatBlobResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

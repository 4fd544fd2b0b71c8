"""S3Store: any S3-compatible endpoint (AWS S3, R2, MinIO, moto) through boto3.

Conditional writes use PutObject / CompleteMultipartUpload with ``IfMatch``
or ``IfNoneMatch='*'``; S3 itself makes them atomic.

Retries. Idempotent calls (GET, HEAD, LIST, DELETE, unconditional PUT) use
botocore's ``standard`` retry mode (5xx, throttling, timeouts, dropped
connections, with exponential backoff and jitter). Conditional PUTs are
retried by this module instead, because a retry of a conditional write whose
first attempt *did* reach S3 (only the response was lost) fails its own
condition: the object already holds our bytes. Every conditional write
therefore carries a unique ``x-amz-meta-mf-write-id``; a 412 that follows an
ambiguous attempt is resolved by reading that id back (see ``_put_conditional``).
A 409 ``ConditionalRequestConflict`` (a concurrent conditional write to the
same key, per the AWS docs) is retried as well: nothing was written.

Endpoint, region and credentials come from the arguments when given, else
from boto3's standard chain (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``, ... and the config files).
"""

from __future__ import annotations

import io
import random
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from micforge.config import Config
from micforge.storage.base import (
    KeyNotFound,
    PreconditionFailed,
    StorageUnavailable,
    StoreError,
    validate_condition,
    validate_head,
    validate_head_bytes,
    validate_key,
    validate_limit,
    validate_prefix,
    validate_writer_key,
)
from micforge.storage.breaker import BreakerOpen, CircuitBreaker

MiB = 1024 * 1024
WRITE_ID_META = "mf-write-id"
_LIST_PAGE_MAX = 1000
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestLimitExceeded",
    "BadGateway",
    "GatewayTimeout",
}
_TRANSPORT_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ProxyConnectionError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ConnectionError,
)


def _is_dropped(exc: Exception) -> bool:
    """A connection closed under a request (see storage/breaker.py): weaker evidence of
    an endpoint down than no connection or no answer at all. Over HTTP that is
    ConnectionClosedError (a reset, or a close before the whole response; a
    streamed body cut short is raised after the response event, so the breaker
    never sees it). Over TLS a close on a kept-alive connection surfaces as an
    SSLError around SSLEOFError or SSLZeroReturnError (boto3#3359); handshake and
    certificate errors stay strong evidence."""
    if isinstance(exc, botocore.exceptions.ConnectionClosedError):
        return True
    if isinstance(exc, botocore.exceptions.SSLError):
        cause: BaseException | None = exc.kwargs.get("error")
        seen = 0
        while cause is not None and seen < 8:  # urllib3 wraps the ssl module's error
            if isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                return True
            nested = [arg for arg in getattr(cause, "args", ()) if isinstance(arg, BaseException)]
            cause = nested[0] if nested else cause.__cause__ or cause.__context__
            seen += 1
        return "EOF" in str(exc)
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Retry budget. ``micforge serve`` takes it from the config (``s3_*`` settings, whose
    defaults these are); tests shrink it so fault tests stay fast. An endpoint that
    accepts connections and never answers costs a call about ``max_attempts`` x
    ``read_timeout_s`` before it is 503 (min(``max_attempts``, ``breaker_failures``) x
    ``read_timeout_s`` with the breaker on)."""

    max_attempts: int = Config.s3_max_attempts  # per call, first attempt included
    backoff_base_ms: int = 50
    backoff_cap_ms: int = 5_000
    connect_timeout_s: float = Config.s3_connect_timeout_ms / 1000
    read_timeout_s: float = Config.s3_read_timeout_ms / 1000
    # The circuit breaker (storage/breaker.py): open after this many attempts in a row
    # got no answer at all, for breaker_cooldown_s. 0 = off (the default here;
    # `micforge serve` turns it on from the config).
    breaker_failures: int = 0
    breaker_cooldown_s: float = Config.s3_breaker_cooldown_ms / 1000


class S3Store:
    """A Store on an S3 bucket, under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        retry: RetryPolicy | None = None,
        multipart_threshold_bytes: int = 64 * MiB,
        multipart_chunk_bytes: int = 16 * MiB,
        addressing_style: str | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        if prefix:
            validate_prefix(prefix)
            prefix = prefix.rstrip("/") + "/"
        if multipart_chunk_bytes < 5 * MiB:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        if multipart_threshold_bytes < multipart_chunk_bytes:
            raise ValueError("multipart_threshold_bytes must be >= multipart_chunk_bytes")
        self.bucket = bucket
        self.prefix = prefix
        self.retry = retry or RetryPolicy()
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.multipart_chunk_bytes = multipart_chunk_bytes
        # A Session of our own unless given one: never boto3's shared default session.
        # Passing one (tests do) only saves reloading the service model, ~50 ms a store.
        if session is None:
            session = boto3.session.Session()
        if addressing_style is None:
            # Custom endpoints (moto, MinIO, R2 by account URL) rarely resolve bucket subdomains.
            addressing_style = "path" if endpoint_url else "auto"
        common = dict(
            connect_timeout=self.retry.connect_timeout_s,
            read_timeout=self.retry.read_timeout_s,
            s3={"addressing_style": addressing_style},
            # Checksum headers by default break some S3-compatible servers; S3 checks
            # Content-MD5-free uploads by TLS and SigV4 payload hashing anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=32,
        )
        retrying = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": self.retry.max_attempts},
            **common,
        )
        single_shot = botocore.config.Config(retries={"total_max_attempts": 1}, **common)
        client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self._client = session.client("s3", config=retrying, **client_args)
        # Conditional writes go through a client that never retries on its own (see module doc).
        self._cond_client = session.client("s3", config=single_shot, **client_args)
        self.breaker = CircuitBreaker(
            self.retry.breaker_failures,
            self.retry.breaker_cooldown_s,
            probe_lease_s=self.retry.connect_timeout_s + self.retry.read_timeout_s + 1,
        )
        for client in (self._client, self._cond_client):
            client.meta.events.register("before-send.s3", self._before_send)
            client.meta.events.register("response-received.s3", self._response_received)

    def _before_send(self, request: Any = None, **_: Any) -> None:
        # Raised inside botocore's send, which hands it back as the attempt's error;
        # botocore does not retry it, and _translate passes a StoreError through.
        try:
            self.breaker.before_call(f"s3://{self.bucket}")
        except BreakerOpen as refused:
            context = getattr(request, "context", None) or {}
            if context.get("retries", {}).get("attempt", 1) > 1:
                # An earlier attempt of this call went out and got no answer: it may
                # have happened, so this is not BreakerOpen's "nothing was sent".
                raise StorageUnavailable(
                    f"{refused}; an earlier attempt of this call went out: outcome unknown"
                ) from None
            raise

    def _response_received(self, exception: Exception | None = None, **_: Any) -> None:
        if exception is None:
            self.breaker.answered()  # any HTTP status: the endpoint is there
        elif isinstance(exception, StoreError):
            return  # refused by _before_send: says nothing of the endpoint
        elif isinstance(exception, _TRANSPORT_ERRORS):
            self.breaker.no_answer(dropped=_is_dropped(exception))
        else:
            self.breaker.probe_ended()  # a local error: no verdict on the endpoint

    def __repr__(self) -> str:
        # Includes the endpoint: CachedStore namespaces its disk cache by this string.
        return f"S3Store(s3://{self.bucket}/{self.prefix} at {self._client.meta.endpoint_url})"

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        # botocore retries the request, not a body read that breaks half-way; retry those here.
        for attempt_index in range(self.retry.max_attempts):
            if attempt_index:
                self._sleep_backoff(attempt_index)
            reader, size_bytes, etag = self.open(key)
            try:
                data = reader.read()
            except StorageUnavailable:
                if attempt_index + 1 == self.retry.max_attempts:
                    raise
                continue
            finally:
                reader.close()
            if len(data) == size_bytes:
                return data, etag
        raise StorageUnavailable(f"{key}: body kept arriving truncated")

    def open(self, key: str) -> tuple[BinaryIO, int, str]:
        full = self._full(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            raise self._translate(exc, key) from exc
        reader = _BodyReader(response["Body"], key)
        return reader, int(response["ContentLength"]), response["ETag"]  # type: ignore[return-value]

    def head(self, key: str) -> str | None:
        full = self._full(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            error = self._translate(exc, key)
            if isinstance(error, KeyNotFound):
                return None
            raise error from exc
        return response["ETag"]

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        validate_prefix(prefix)
        validate_limit(limit)
        result: list[str] = []
        if limit == 0:
            return result
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after is not None:
            kwargs["StartAfter"] = self.prefix + start_after
        while True:
            page_max = _LIST_PAGE_MAX if limit is None else min(_LIST_PAGE_MAX, limit - len(result))
            try:
                response = self._client.list_objects_v2(MaxKeys=page_max, **kwargs)
            except Exception as exc:
                raise self._translate(exc, prefix) from exc
            for item in response.get("Contents", []):
                result.append(item["Key"][len(self.prefix) :])
            if limit is not None and len(result) >= limit:
                return result[:limit]
            if not response.get("IsTruncated"):
                return result
            kwargs["ContinuationToken"] = response["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    # -- writes --------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        validate_condition(if_match, if_none_match)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        full = self._full(key)
        data = bytes(data)
        if if_match is None and not if_none_match:
            try:
                response = self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
            except Exception as exc:
                raise self._translate(exc, key) from exc
            return response["ETag"]
        conditions: dict[str, str] = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}

        def attempt(write_id: str) -> str:
            response = self._cond_client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                Metadata={WRITE_ID_META: write_id},
                **conditions,
            )
            return response["ETag"]

        return self._put_conditional(key, attempt, if_match=if_match is not None)

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        if not isinstance(size_bytes, int) or size_bytes < 0:
            raise ValueError(f"size_bytes must be a non-negative int, got {size_bytes!r}")
        full = self._full(key)
        if size_bytes < self.multipart_threshold_bytes:
            data = _read_exact(fileobj, size_bytes, key)
            if fileobj.read(1):
                raise ValueError(f"{key}: source holds more than {size_bytes} bytes")
            return self.put(key, data, if_none_match=if_none_match)
        return self._put_multipart(key, full, fileobj, size_bytes, if_none_match)

    def open_writer(self, key: str | None = None, *, head_bytes: int = 0) -> S3Writer:
        if key is not None:
            self._full(key)  # reject a bad key before any data arrives
        validate_head_bytes(head_bytes)
        return S3Writer(self, key, head_bytes)

    def delete(self, key: str) -> None:
        full = self._full(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            error = self._translate(exc, key)
            if isinstance(error, KeyNotFound):
                return
            raise error from exc

    def close(self) -> None:
        self._client.close()
        self._cond_client.close()

    # -- internals -----------------------------------------------------------

    def _put_multipart(
        self, key: str, full: str, fileobj: BinaryIO, size_bytes: int, if_none_match: bool
    ) -> str:
        write_id = uuid.uuid4().hex
        upload_id = self._create_multipart(key, full, write_id)
        completed = False
        try:
            parts = []
            remaining = size_bytes
            part_number = 1
            while remaining > 0:
                chunk = _read_exact(fileobj, min(self.multipart_chunk_bytes, remaining), key)
                remaining -= len(chunk)
                parts.append(self._upload_part(key, full, upload_id, part_number, chunk))
                part_number += 1
            if fileobj.read(1):
                raise ValueError(f"{key}: source holds more than {size_bytes} bytes")
            etag = self._complete_multipart(key, full, upload_id, parts, write_id, if_none_match)
            completed = True
            return etag
        finally:
            if not completed:
                self._abort_multipart(full, upload_id)

    def _create_multipart(self, key: str, full: str, write_id: str) -> str:
        try:
            return self._client.create_multipart_upload(
                Bucket=self.bucket, Key=full, Metadata={WRITE_ID_META: write_id}
            )["UploadId"]
        except Exception as exc:
            raise self._translate(exc, key) from exc

    def _upload_part(
        self, key: str, full: str, upload_id: str, part_number: int, body: bytes
    ) -> dict[str, Any]:
        try:
            # UploadPart is idempotent per (upload, part number): safe to auto-retry.
            response = self._client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=part_number, Body=body
            )
        except Exception as exc:
            raise self._translate(exc, key) from exc
        return {"PartNumber": part_number, "ETag": response["ETag"]}

    def _complete_multipart(
        self,
        key: str,
        full: str,
        upload_id: str,
        parts: list[dict[str, Any]],
        write_id: str,
        if_none_match: bool,
    ) -> str:
        conditions = {"IfNoneMatch": "*"} if if_none_match else {}
        ordered = sorted(parts, key=lambda part: part["PartNumber"])

        def attempt(_write_id: str) -> str:
            response = self._cond_client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": ordered},
                **conditions,
            )
            return response["ETag"]

        return self._put_conditional(key, attempt, if_match=False, write_id=write_id)

    def _abort_multipart(self, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except Exception:
            # Best effort: a lifecycle rule for incomplete uploads reclaims the parts.
            pass

    def _put_conditional(
        self, key: str, attempt: Any, *, if_match: bool, write_id: str | None = None
    ) -> str:
        """Run a conditional write with retries, resolving lost responses.

        After an attempt whose outcome is unknown (5xx, timeout, dropped
        connection), a later 412 may be our own earlier write. HEAD tells: if
        the object carries our write id, the write happened and we return its
        etag; otherwise someone else's write won and the condition truly
        failed, except under ``if_match``: there our write may have landed and
        been replaced since, so the outcome is unknown (StorageUnavailable).
        With ``if_none_match`` a foreign object means the key existed or was
        created by another writer, which is what PreconditionFailed says; only
        an overwrite of an If-None-Match object within the retry window could
        hide our write, and micforge never overwrites those (write-once keys).
        """
        write_id = write_id or uuid.uuid4().hex
        ambiguous = False
        last_error: Exception | None = None
        for attempt_index in range(self.retry.max_attempts):
            if attempt_index:
                self._sleep_backoff(attempt_index)
            try:
                return attempt(write_id)
            except Exception as exc:
                error = self._translate(exc, key)
                last_error = exc
                if isinstance(error, (PreconditionFailed, KeyNotFound)):
                    # If-Match on a missing key is 404 on S3: a failed condition to callers.
                    if ambiguous:
                        resolved = self._resolve_own_write(key, write_id)
                        if resolved is not None:
                            return resolved
                        if if_match:
                            # Our lost attempt may have landed and been replaced since; a
                            # PreconditionFailed would invite a retry that applies it twice.
                            raise StorageUnavailable(
                                f"{key}: outcome of a conditional write unknown after a lost response"
                            ) from exc
                    raise PreconditionFailed(f"{key}: {error}") from exc
                if _is_conditional_conflict(exc):
                    continue  # AWS: a concurrent conditional write; retry, nothing was written
                if isinstance(error, BreakerOpen):
                    # Not sent, so not ambiguous; and no retry gets through before the
                    # cooldown ends. An earlier lost attempt still needs resolving.
                    if not ambiguous:
                        raise error from exc
                    break
                if isinstance(error, StorageUnavailable):
                    ambiguous = True
                    continue
                raise error from exc
        if ambiguous:
            # The last attempts failed in transit; one of them may still have landed.
            resolved = self._resolve_own_write(key, write_id)
            if resolved is not None:
                return resolved
        raise StorageUnavailable(
            f"{key}: conditional write failed after {self.retry.max_attempts} attempts: {last_error}"
        ) from last_error

    def _resolve_own_write(self, key: str, write_id: str) -> str | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            error = self._translate(exc, key)
            if isinstance(error, KeyNotFound):
                return None
            if isinstance(error, BreakerOpen):
                # The HEAD was not sent, but the write it was to resolve was.
                raise StorageUnavailable(
                    f"{key}: outcome of a conditional write unknown after a lost response ({error})"
                ) from exc
            raise error from exc
        # S3 lowercases metadata names, but an S3-compatible server or proxy may
        # capitalize the header (X-Amz-Meta-Mf-Write-Id) and botocore keeps its case.
        metadata = {name.lower(): value for name, value in response.get("Metadata", {}).items()}
        if metadata.get(WRITE_ID_META) == write_id:
            return response["ETag"]
        return None

    def _sleep_backoff(self, attempt_index: int) -> None:
        cap_ms = min(self.retry.backoff_cap_ms, self.retry.backoff_base_ms * 2**attempt_index)
        time.sleep(random.uniform(0, cap_ms) / 1000)  # full jitter

    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _translate(self, exc: Exception, key: str) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in {"NoSuchKey", "404", "NotFound"} or (
                status == 404 and code != "NoSuchBucket"
            ):
                return KeyNotFound(key)
            if code == "NoSuchBucket":
                return StoreError(
                    f"S3 {status} NoSuchBucket: the bucket {self.bucket!r} does not exist"
                    " (micforge never creates one)"
                )
            # A listing of the whole store has the empty key: name the place instead.
            key = key or f"s3://{self.bucket}/{self.prefix}"
            if code in {"PreconditionFailed", "412"} or status == 412:
                return PreconditionFailed(f"{key}: precondition failed")
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return StorageUnavailable(f"{key}: S3 {status} {code}: {error.get('Message', '')}")
            if code == "ConditionalRequestConflict":
                return StorageUnavailable(f"{key}: conditional request conflict persisted")
            return StoreError(f"{key}: S3 {status} {code}: {error.get('Message', '')}")
        if isinstance(exc, _TRANSPORT_ERRORS):
            return StorageUnavailable(f"{key}: {exc}")
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StoreError(f"no AWS credentials for s3://{self.bucket}: {exc}")
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return StoreError(f"{key}: {exc}")
        raise exc


def _is_conditional_conflict(exc: Exception) -> bool:
    return (
        isinstance(exc, botocore.exceptions.ClientError)
        and exc.response.get("Error", {}).get("Code") == "ConditionalRequestConflict"
    )


def _read_exact(fileobj: BinaryIO, size_bytes: int, key: str) -> bytes:
    buffer = bytearray()
    while len(buffer) < size_bytes:
        chunk = fileobj.read(size_bytes - len(buffer))
        if not chunk:
            raise ValueError(f"{key}: source ended after {len(buffer)} of {size_bytes} bytes")
        buffer += chunk
    return bytes(buffer)


class S3Writer:
    """``S3Store.open_writer``. With its key known at open, a multipart upload as
    data arrives: parts of ``multipart_chunk_bytes``, uploaded as they fill,
    except part 1, which starts with the head and so is held in memory until
    commit; an object that never fills two parts is one conditional PutObject.
    At most two parts are in memory. Completion is conditional and retried as
    in ``put_file``; an abort (or any failure) aborts the upload, so nothing
    becomes visible. With the key named only at commit (the upload needs it
    from the start), the body is spooled to a local temp file and uploaded at
    commit the same way.
    """

    def __init__(self, store: S3Store, key: str | None, head_bytes: int) -> None:
        self._store = store
        self._key = key
        self._head_bytes = head_bytes
        self._parts = _PartUploader(store, key, head_bytes) if key is not None else None
        self._spool: BinaryIO | None = tempfile.TemporaryFile() if key is None else None
        self._finished = False

    def __enter__(self) -> S3Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, data: bytes) -> None:
        if self._finished:
            raise ValueError("the writer is committed or aborted")
        try:
            if self._parts is not None:
                self._parts.write(data)
            else:
                assert self._spool is not None
                self._spool.write(data)
        except BaseException:
            self.abort()
            raise

    def commit(
        self, key: str | None = None, *, head: bytes = b"", if_none_match: bool = False
    ) -> str:
        if self._finished:
            raise ValueError("the writer is committed or aborted")
        try:
            key = validate_writer_key(self._key, key)
            self._store._full(key)
            validate_head(head, self._head_bytes)
            if self._parts is None:
                assert self._spool is not None
                self._parts = _PartUploader(self._store, key, self._head_bytes)
                self._spool.seek(0)
                while piece := self._spool.read(self._store.multipart_chunk_bytes):
                    self._parts.write(piece)
            etag = self._parts.finish(bytes(head), if_none_match)
            self._finished = True
            return etag
        finally:
            self.abort()  # a no-op after the commit

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if not self._finished:
            self._finished = True
            if self._parts is not None:
                self._parts.abort()


class _PartUploader:
    """The parts of one object at a known key (see ``S3Writer``)."""

    def __init__(self, store: S3Store, key: str, head_bytes: int) -> None:
        self._store = store
        self._key = key
        self._full = store._full(key)
        self._part_bytes = store.multipart_chunk_bytes
        self._first_body_bytes_max = self._part_bytes - head_bytes
        self._first = bytearray()  # part 1 after the head, uploaded at finish
        self._pending = bytearray()  # the part being filled
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._write_id = uuid.uuid4().hex

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        room = self._first_body_bytes_max - len(self._first)
        if room > 0:
            self._first += view[:room]
            view = view[room:]
        self._pending += view
        while len(self._pending) >= self._part_bytes:
            if self._upload_id is None:
                self._upload_id = self._store._create_multipart(
                    self._key, self._full, self._write_id
                )
            body = bytes(self._pending[: self._part_bytes])
            del self._pending[: self._part_bytes]
            self._upload(len(self._parts) + 2, body)

    def finish(self, head: bytes, if_none_match: bool) -> str:
        if self._upload_id is None:
            body = head + bytes(self._first) + bytes(self._pending)
            return self._store.put(self._key, body, if_none_match=if_none_match)
        if self._pending:
            self._upload(len(self._parts) + 2, bytes(self._pending))
        self._upload(1, head + bytes(self._first))
        return self._store._complete_multipart(
            self._key, self._full, self._upload_id, self._parts, self._write_id, if_none_match
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._store._abort_multipart(self._full, upload_id)

    def _upload(self, part_number: int, body: bytes) -> None:
        assert self._upload_id is not None
        self._parts.append(
            self._store._upload_part(self._key, self._full, self._upload_id, part_number, body)
        )


class _BodyReader(io.RawIOBase):
    """A GetObject body as a file object whose transport errors are StorageUnavailable."""

    def __init__(self, body: Any, key: str) -> None:
        super().__init__()
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            chunk = self._body.read(len(buffer))
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"{self._key}: read interrupted: {exc}") from exc
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read() if size is None or size < 0 else self._body.read(size)
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"{self._key}: read interrupted: {exc}") from exc

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()

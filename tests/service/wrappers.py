"""Store wrappers for tests: they wrap a real store (LocalStore or S3Store on moto),
never replace it. Counting reads, verifying content-addressed reads, and crashing
at the k-th write are how the landing protocol's claims are checked."""

from __future__ import annotations

import threading
import time
from typing import BinaryIO

from micforge.storage import Store
from micforge.storage.base import ObjectWriter


class InjectedCrash(Exception):
    """Raised by CrashingStore in place of a write: the process 'dies' here."""


class CountingStore:
    """Counts every call that reaches the wrapped store."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.reads = 0  # get + head + open
        self.writes = 0
        self.lists = 0
        self.writers_opened = 0

    def reset(self) -> None:
        with self._lock:
            self.reads = self.writes = self.lists = self.writers_opened = 0

    def _bump(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def get(self, key: str) -> tuple[bytes, str]:
        self._bump("reads")
        return self.inner.get(key)

    def head(self, key: str) -> str | None:
        self._bump("reads")
        return self.inner.head(key)

    def open(self, key: str) -> tuple[BinaryIO, int, str]:
        self._bump("reads")
        return self.inner.open(key)

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        self._bump("writes")
        return self.inner.put(key, data, if_match=if_match, if_none_match=if_none_match)

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        self._bump("writes")
        return self.inner.put_file(key, fileobj, size_bytes, if_none_match=if_none_match)

    def open_writer(self, key: str | None = None, *, head_bytes: int = 0) -> ObjectWriter:
        # Opening writes nothing visible; the commit is the write that counts.
        self._bump("writers_opened")
        return _WrapperWriter(self, self.inner.open_writer(key, head_bytes=head_bytes))

    def _before_write(self) -> None:
        """Called before every write reaches the inner store (CrashingStore crashes here)."""

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        self._bump("lists")
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


class _WrapperWriter:
    """An inner store's ObjectWriter whose commit counts (and may crash) as one write."""

    def __init__(self, owner: CountingStore, inner: ObjectWriter) -> None:
        self._owner = owner
        self._inner = inner

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def commit(
        self, key: str | None = None, *, head: bytes = b"", if_none_match: bool = False
    ) -> str:
        try:
            self._owner._before_write()
        except BaseException:
            self._inner.abort()  # the process died before publishing: nothing visible
            raise
        self._owner._bump("writes")
        return self._inner.commit(key, head=head, if_none_match=if_none_match)

    def abort(self) -> None:
        self._inner.abort()

    def __enter__(self) -> _WrapperWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class CrashingStore(CountingStore):
    """Raises InjectedCrash instead of performing write number ``crash_at`` (0-based),
    and every write after it: the process died at that point."""

    def __init__(self, inner: Store, crash_at: int) -> None:
        super().__init__(inner)
        self.crash_at = crash_at
        self.crashed = False

    def _maybe_crash(self) -> None:
        with self._lock:
            if self.writes >= self.crash_at:
                self.crashed = True
                raise InjectedCrash(f"crash injected at write {self.writes}")

    def _before_write(self) -> None:
        self._maybe_crash()

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        self._maybe_crash()
        return super().put(key, data, if_match=if_match, if_none_match=if_none_match)

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        self._maybe_crash()
        return super().put_file(key, fileobj, size_bytes, if_none_match=if_none_match)


__all__ = ["CountingStore", "CrashingStore", "InjectedCrash"]


class HookStore(CountingStore):
    """Runs ``hook`` once, just before the first conditional write to a key ending in
    ``suffix``: a deterministic stand-in for another agent acting at that instant."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.hook = None
        self.suffix = ""

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        hook = self.hook
        if hook is not None and if_match is not None and key.endswith(self.suffix):
            self.hook = None
            hook()
        return super().put(key, data, if_match=if_match, if_none_match=if_none_match)


class SlowSessionReadsStore(CountingStore):
    """Each get of a session object takes ``delay_s`` longer (an S3 round trip), and the
    most such gets in flight at once is recorded."""

    def __init__(self, inner: Store, delay_s: float) -> None:
        super().__init__(inner)
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.session_gets = 0

    def get(self, key: str) -> tuple[bytes, str]:
        if "/sessions/" not in key:
            return super().get(key)
        with self._lock:
            self.in_flight += 1
            self.session_gets += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            return super().get(key)
        finally:
            with self._lock:
                self.in_flight -= 1


class HangingStore(CountingStore):
    """A store whose list() blocks while ``hang`` is set: an S3 endpoint that accepts
    connections and never answers. Everything else reaches the inner store."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.hang = threading.Event()
        self._released = threading.Event()
        self._released.set()

    def start_hanging(self) -> None:
        self._released.clear()
        self.hang.set()

    def stop_hanging(self) -> None:
        self.hang.clear()
        self._released.set()

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        if self.hang.is_set():
            self._released.wait(60)
        return super().list(prefix, start_after=start_after, limit=limit)

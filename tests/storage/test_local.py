"""LocalStore specifics: containment, atomicity, its file format, list order."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micforge.storage import (
    InvalidKey,
    KeyNotFound,
    LocalStore,
    PreconditionFailed,
    StorageUnavailable,
    StoreError,
)
from micforge.storage.hashing import blake3_hex
from micforge.storage.local import HEADER_BYTES, MAGIC, STALE_TEMP_SECONDS


def test_etag_is_blake3_of_content(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put("k", b"hello") == blake3_hex(b"hello")
    raw = (tmp_path / "objects" / "k.mfo").read_bytes()
    assert raw[:4] == MAGIC and raw[4:HEADER_BYTES].decode() == blake3_hex(b"hello")
    assert raw[HEADER_BYTES:] == b"hello"


@pytest.mark.parametrize(
    "bad", ["../escape", "a/../../escape", "/etc/passwd", "a/\x00", "..", "a/./b", "a\\..\\b"]
)
def test_keys_cannot_escape_the_root(tmp_path: Path, bad: str) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(InvalidKey):
        store.put(bad, b"x")
    assert not any(tmp_path.glob("escape*"))
    assert list((tmp_path / "root" / "objects").iterdir()) == []


def test_failed_write_leaves_nothing_visible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"old")

    class Exploding(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk went away half-way")
            return b"x" * min(n, 1000)

    with pytest.raises(StoreError):
        store.put_file("k", Exploding(), 10_000_000)  # type: ignore[arg-type]
    assert store.get("k")[0] == b"old"
    leftovers = [p.name for p in (tmp_path / "objects").iterdir()]
    assert leftovers == ["k.mfo"], "temp file left behind"


def test_temp_and_lock_files_are_never_keys(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("d/a", b"1")
    (tmp_path / "objects" / "d" / ".tmp-crashed-writer").write_bytes(b"garbage")
    (tmp_path / "objects" / "d" / "stray-no-suffix").write_bytes(b"garbage")
    assert store.list("") == ["d/a"]
    assert store.list("d/") == ["d/a"]


def test_opening_a_store_sweeps_only_stale_writer_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.swept_temp_files == 0
    objects = tmp_path / "objects"
    stale = time.time() - STALE_TEMP_SECONDS - 60
    crashed = objects / ".tmp-crashed"  # a writer that died a day ago
    crashed.write_bytes(b"half a blob")
    os.utime(crashed, (stale, stale))
    live = objects / ".tmp-live"  # another process writing now
    live.write_bytes(b"in progress")
    kept_dir = objects / ".tmp-a-directory"  # not a writer's file: left alone
    kept_dir.mkdir()
    os.utime(kept_dir, (stale, stale))
    nested = objects / "d" / ".tmp-put-temp"  # put's (small, next to its target): not swept
    store.put("d/a", b"1")
    nested.write_bytes(b"x")
    os.utime(nested, (stale, stale))
    writer = store.open_writer("w/streamed", head_bytes=0)
    writer.write(b"still streaming")  # its file is young: the sweep must spare it

    again = LocalStore(tmp_path)
    assert again.swept_temp_files == 1
    assert not crashed.exists()
    assert live.exists() and kept_dir.is_dir() and nested.exists()
    writer.commit()
    assert again.get("w/streamed")[0] == b"still streaming"
    assert again.get("d/a")[0] == b"1"


def test_foreign_file_is_an_error_not_data(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "objects" / "k.mfo").write_bytes(b"not ours")
    with pytest.raises(StoreError):
        store.get("k")


def test_open_reader_keeps_its_version_across_replace(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"old" * 1000)
    reader, size, _ = store.open("k")
    store.put("k", b"new")
    store.delete("k")
    with reader:
        assert reader.read() == b"old" * 1000 and size == 3000
    with pytest.raises(KeyNotFound):
        store.open("k")


def test_threads_cas_in_one_process(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.put("counter", b"0")

    def increment() -> None:
        for _ in range(50):
            while True:
                data, etag = store.get("counter")
                try:
                    store.put("counter", str(int(data) + 1).encode(), if_match=etag)
                    break
                except PreconditionFailed:
                    continue

    threads = [threading.Thread(target=increment) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("counter")[0] == b"400"


def test_key_under_a_file_path_and_file_under_a_dir_coexist(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a/b", b"child")
    store.put("a", b"parent")
    assert store.get("a")[0] == b"parent" and store.get("a/b")[0] == b"child"
    store.delete("a/b")
    assert store.list("") == ["a"]


def test_unwritable_root_is_unavailable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError):
            LocalStore(tmp_path / "store")
    finally:
        tmp_path.chmod(0o700)


SEGMENT = st.text(alphabet="ab-_z0", min_size=1, max_size=3)
KEY = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.sets(KEY, max_size=12),
    prefix=st.text(alphabet="ab-/", max_size=4),
    start_after=st.none() | KEY,
    limit=st.none() | st.integers(0, 5),
)
def test_list_matches_the_s3_model(
    tmp_path_factory: pytest.TempPathFactory,
    keys: set[str],
    prefix: str,
    start_after: str | None,
    limit: int | None,
) -> None:
    """Sorted by code point, filtered by string prefix, strictly after start_after: S3's rules."""
    if prefix.startswith("/") or "//" in prefix:
        return  # not a valid prefix; rejection is tested elsewhere
    store = LocalStore(tmp_path_factory.mktemp("s"), fsync=False)
    for key in keys:
        store.put(key, b"")
    expected = sorted(
        k for k in keys if k.startswith(prefix) and (start_after is None or k > start_after)
    )
    if limit is not None:
        expected = expected[:limit]
    assert store.list(prefix, start_after=start_after, limit=limit) == expected


def _durability_trace(monkeypatch: pytest.MonkeyPatch, root: Path) -> list[tuple[str, str]]:
    """Record, in order, each mkdir, each fsync (of which path) and each rename into
    place, as paths relative to ``root``."""
    trace: list[tuple[str, str]] = []
    real_fsync, real_replace, real_mkdir = os.fsync, os.replace, os.mkdir

    def name(path: str | Path) -> str:
        return os.path.relpath(path, root)

    def fsync(fd: int) -> None:
        trace.append(("fsync", name(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        trace.append(("rename", name(dst)))

    def mkdir(path: str | Path, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        trace.append(("mkdir", name(path)))

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return trace


@pytest.mark.parametrize("how", ["put", "writer"])
def test_a_write_is_durable_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Before the rename: the file's data, and every directory the write created
    (its parent fsynced). After it: the directory holding the new entry. One
    fsync per created directory, and the file's first, so that a journaling
    filesystem commits the mkdirs with it."""
    store = LocalStore(tmp_path)
    store.put("a/old", b"x")  # "a" exists; "a/b" and "a/b/c" do not
    objects = tmp_path / "objects"
    trace = _durability_trace(monkeypatch, objects)
    if how == "put":
        store.put("a/b/c/k", b"data")
    else:
        with store.open_writer() as writer:
            writer.write(b"data")
            writer.commit("a/b/c/k")
    assert trace[:2] == [("mkdir", "a/b"), ("mkdir", "a/b/c")], trace
    assert len(trace) == 7, trace
    first, *dirs, rename, last = trace[2:]
    assert first[0] == "fsync" and first[1].startswith(
        "a/b/c/.tmp-" if how == "put" else ".tmp-"
    ), trace
    assert sorted(dirs) == [("fsync", "a"), ("fsync", "a/b")], trace
    assert rename == ("rename", "a/b/c/k.mfo")
    assert last == ("fsync", "a/b/c")
    assert store.get("a/b/c/k")[0] == b"data"


def test_a_write_into_existing_directories_fsyncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put("a/b/old", b"x")
    trace = _durability_trace(monkeypatch, tmp_path / "objects")
    store.put("a/b/k", b"data")
    assert [step for step, _ in trace] == ["fsync", "rename", "fsync"], trace
    assert trace[1:] == [("rename", "a/b/k.mfo"), ("fsync", "a/b")]


def test_a_store_whose_objects_directory_is_gone_is_unavailable(tmp_path: Path) -> None:
    """An empty prefix lists nothing and a missing key is absent; a store without its
    objects directory is broken, and says so rather than reading as empty."""
    store = LocalStore(tmp_path)
    store.put("a/b", b"x")
    assert store.list("nothing/here/") == []
    objects = tmp_path / "objects"
    os.rename(objects, tmp_path / "aside")
    objects.write_bytes(b"a file where the directory was")
    with pytest.raises(StorageUnavailable):
        store.list("")
    with pytest.raises(StorageUnavailable):
        store.list("a/")
    for read in (store.head, store.get, store.open):
        with pytest.raises(StorageUnavailable):
            read("a/b")  # not "absent": the whole store is
    objects.unlink()
    with pytest.raises(StorageUnavailable):
        store.list("")
    with pytest.raises(StorageUnavailable):
        store.head("a/b")


def test_a_put_killed_mid_write_leaves_a_temp_file_the_next_store_sweeps(tmp_path: Path) -> None:
    # A real crash: a child process in put_file, reading its source from a pipe that
    # never ends, is SIGKILLed. Its temp file must be where the sweep looks.
    script = f"""
import sys
from micforge.storage import LocalStore
store = LocalStore({str(tmp_path)!r})
print("writing", flush=True)
store.put_file("deep/key/of/an/object", sys.stdin.buffer, 10_000_000)
"""
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == b"writing\n"
        child.stdin.write(b"x" * 3_000_000)  # more than one copy chunk: the file is written
        child.stdin.flush()
        objects = tmp_path / "objects"
        deadline = time.monotonic() + 30
        while not [p for p in objects.iterdir() if p.name.startswith(".tmp-")]:
            assert time.monotonic() < deadline, "no temp file appeared"
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait(30)
    (temp,) = [p for p in (tmp_path / "objects").rglob(".tmp-*")]
    assert temp.parent == tmp_path / "objects"
    stale = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(temp, (stale, stale))
    assert LocalStore(tmp_path).swept_temp_files == 1
    assert not temp.exists()

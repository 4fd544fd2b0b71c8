"""Landing throughput, latency and conflict-check cost, micforge beside git, from ONE run.

Part 1 - concurrent landings (disjoint paths). For each agent count (default 1, 2,
4, 8) and each backend:

* ``local``: micforge on a LocalStore (fsync on, as deployed) in a fresh tmp dir;
* ``moto``:  micforge on S3 (a real moto server subprocess, started by running
  tests/fixtures/moto_server.py --serve: atomic conditional writes, every request
  serialized), a fresh bucket per configuration;
* ``git``:   a bare repository and one clone per agent; each session writes one
  file, commits, pushes, and on rejection runs ``git pull --rebase`` and pushes
  again.

Every agent is its own process. A micforge agent builds its own ``Services``
(``build_services(config, store=..., auth_db=AuthDB.open(sqlite url))``) against
the shared store and auth DB, as stateless agents do. One session = start, put 1
blob, record 1 write op, land. "Landing latency" is the ``land()`` call for
micforge and the push loop (push, pull --rebase on rejection, push ...) for git:
in both cases the time from a finished local change to it being on the shared
linear history. Throughput is all sessions / wall time (first agent start to last
agent end, after a synchronized start; each agent lands one untimed warm-up
session first). Retries/landing: micforge's ``services.metrics.cas_retries`` (and,
counted under the cache, the 412s by object kind); git's rejected pushes.

Part 2 - conflict-check cost vs history length (default 100; 10,000; 1,000,000).
A synthetic history is planted directly through a LocalStore (fsync off: a
throwaway store): every rollup of every level, the head, and the landing records
(all of them up to 10,000; above that only the few the checks read). Planting is
timed separately. Then, each with a cold cache:

* ``clean``:    a session based 90% back, no conflict, landed with ``land()``;
* ``conflict``: a session based at 0 touching one path landed at ~H/2 (``Conflict``);
* ``mid-window``: the worst case for the edges - the check alone with the tip one
  short of a window boundary on every level, so incomplete windows descend.

Reported: conflict-check objects (``landing.last_check.objects_read``), backend
reads of the whole ``land()`` call, its latency, and what a linear scan would read.

Run (defaults fit in a few minutes on 2 shared cores):

    .venv/bin/python benchmarks/bench_landing.py
    .venv/bin/python benchmarks/bench_landing.py --sessions 400 --agents 1,2,4,8,16 --history 100,10000,1000000
    .venv/bin/python benchmarks/bench_landing.py --backends local,git --history-max 10000
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.fixtures.moto_server (reused, not copied)

PROJECT = "bench"


# ----------------------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def cheap_scrypt():
    from micforge.auth import ScryptParams

    return ScryptParams(n=2, r=1, p=1)  # no token is verified here; keep user creation fast


def bench_config(data_dir: Path, **overrides: object):
    from micforge.config import Config

    values: dict[str, object] = {
        "data_dir": data_dir,
        "cache_dir": "off",
        "landing_max_attempts": 200,
    }
    values.update(overrides)
    return Config.load(values, environ={})


class TallyStore:
    """Wraps a backend store (under the services' cache) and counts what reaches it:
    reads, writes, and lost conditional writes (412) by object kind."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0
        self.lost: dict[str, int] = {}

    def _bump_reads(self) -> None:
        with self._lock:
            self.reads += 1

    def get(self, key: str):
        self._bump_reads()
        return self.inner.get(key)

    def head(self, key: str):
        self._bump_reads()
        return self.inner.head(key)

    def open(self, key: str):
        self._bump_reads()
        return self.inner.open(key)

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        from micforge.storage import PreconditionFailed

        with self._lock:
            self.writes += 1
        try:
            return self.inner.put(key, data, if_match=if_match, if_none_match=if_none_match)
        except PreconditionFailed:
            kind = _kind(key)
            with self._lock:
                self.lost[kind] = self.lost.get(kind, 0) + 1
            raise

    def put_file(self, key: str, fileobj, size_bytes: int, *, if_none_match: bool = False) -> str:
        with self._lock:
            self.writes += 1
        return self.inner.put_file(key, fileobj, size_bytes, if_none_match=if_none_match)

    def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None):
        self._bump_reads()
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


def _kind(key: str) -> str:
    parts = key.split("/")
    return parts[2] if len(parts) > 2 and parts[0] == "projects" else parts[0]


def counter_value(services, name: str) -> float:
    return services.metrics.registry.get_sample_value(f"{name}_total") or 0.0


# ----------------------------------------------------------------------------- moto


@contextlib.contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """A real moto server subprocess (tests/fixtures/moto_server.py --serve); yields
    the S3Store keyword arguments for it."""
    from tests.fixtures import moto_server as fixture

    with fixture.running_moto_server() as endpoint:
        yield {
            "endpoint_url": endpoint,
            "region_name": fixture.REGION,
            "aws_access_key_id": fixture.ACCESS_KEY,
            "aws_secret_access_key": fixture.SECRET_KEY,
        }


def open_backend(spec: dict):
    from micforge.storage import LocalStore, S3Store

    if spec["kind"] == "local":
        return LocalStore(spec["root"], fsync=spec.get("fsync", True))
    return S3Store(spec["bucket"], "", **spec["s3"])


# ----------------------------------------------------------------------------- agents


@dataclasses.dataclass
class AgentResult:
    agent: int
    start: float  # time.monotonic() after the synchronized start (system-wide clock)
    end: float
    latencies: list[float]
    retries: int
    failures: int
    reads: int = 0
    writes: int = 0
    lost: dict[str, int] = dataclasses.field(default_factory=dict)
    error: str = ""


def micforge_agent(spec: dict, agent: int, sessions: int, barrier, results) -> None:
    """One stateless agent process: its own Services on the shared store and auth DB."""
    try:
        from micforge.auth import AuthDB
        from micforge.errors import Unavailable
        from micforge.service import build_services

        config = bench_config(Path(spec["data_dir"]) / f"agent{agent}", **spec["overrides"])
        backend = open_backend(spec)
        tally = TallyStore(backend)
        auth = AuthDB.open(spec["auth_url"], scrypt_params=cheap_scrypt())
        services = build_services(config, store=tally, auth_db=auth)
        user = auth.get_user(spec["user_id"])
        project = spec["project"]

        def one(i: int) -> float:
            sid = services.sessions.start(user, project, f"agent {agent} change {i}")["id"]
            view, _ = services.blobs.put(user, project, f"agent {agent} change {i}\n".encode())
            services.sessions.record_operations(
                user,
                project,
                sid,
                [{"op": "write", "path": f"agent{agent}/file{i}", "blob_hash": view["hash"]}],
            )
            t0 = time.perf_counter()
            services.landing.land(user, project, sid)
            return time.perf_counter() - t0

        try:
            one(-1)  # warm-up: first-call costs (connections, lazy imports) stay out of the numbers
            retries0 = counter_value(services, "micforge_cas_retries")
            reads0, writes0, lost0 = tally.reads, tally.writes, dict(tally.lost)
            barrier.wait()
            start = time.monotonic()
            latencies: list[float] = []
            failures = 0
            for i in range(sessions):
                try:
                    latencies.append(one(i))
                except Unavailable:
                    failures += 1
            end = time.monotonic()
            lost = {k: v - lost0.get(k, 0) for k, v in tally.lost.items() if v - lost0.get(k, 0)}
            results.put(
                AgentResult(
                    agent,
                    start,
                    end,
                    latencies,
                    int(counter_value(services, "micforge_cas_retries") - retries0),
                    failures,
                    tally.reads - reads0,
                    tally.writes - writes0,
                    lost,
                )
            )
        finally:
            services.close()
            backend.close()
            auth.close()
    except BaseException as exc:  # report, never hang the parent on a barrier
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put(AgentResult(agent, 0.0, 0.0, [], 0, 0, error=f"{type(exc).__name__}: {exc}"))


def git_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        HOME=str(root),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def git(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def git_agent(spec: dict, agent: int, sessions: int, barrier, results) -> None:
    """One git agent process: commit one file, push; on rejection pull --rebase, push again."""
    try:
        clone = Path(spec["root"]) / f"clone{agent}"
        env = git_env(Path(spec["root"]))
        max_attempts = 200

        def one(i: int) -> tuple[float, int]:
            path = clone / f"agent{agent}" / f"file{i}"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"agent {agent} change {i}\n")
            git(["add", str(path.relative_to(clone))], clone, env)
            git(["commit", "-q", "-m", f"agent {agent} change {i}"], clone, env)
            t0 = time.perf_counter()
            rejected = 0
            for _ in range(max_attempts):
                if (
                    git(["push", "-q", "origin", "HEAD:main"], clone, env, check=False).returncode
                    == 0
                ):
                    return time.perf_counter() - t0, rejected
                rejected += 1
                git(["pull", "--rebase", "-q", "origin", "main"], clone, env, check=False)
            raise RuntimeError(f"push not accepted after {max_attempts} attempts")

        one(-1)
        barrier.wait()
        start = time.monotonic()
        latencies: list[float] = []
        retries = 0
        for i in range(sessions):
            latency, rejected = one(i)
            latencies.append(latency)
            retries += rejected
        end = time.monotonic()
        results.put(AgentResult(agent, start, end, latencies, retries, 0))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put(AgentResult(agent, 0.0, 0.0, [], 0, 0, error=f"{type(exc).__name__}: {exc}"))


# ----------------------------------------------------------------------------- part 1


@dataclasses.dataclass
class RunResult:
    backend: str
    agents: int
    sessions: int
    wall: float
    latencies: list[float]
    retries: int
    failures: int
    reads: int
    writes: int
    lost: dict[str, int]
    errors: list[str]
    rounds: int = 1
    median_rate: float | None = None  # set when rounds are merged

    @property
    def rate(self) -> float:
        if self.median_rate is not None:
            return self.median_rate
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")


def merge_rounds(rounds: list[RunResult]) -> RunResult:
    """Throughput: the median round. Latency percentiles, retries and request counts:
    pooled over all rounds (more samples for p99)."""
    median = sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2]
    lost: dict[str, int] = {}
    for r in rounds:
        for k, v in r.lost.items():
            lost[k] = lost.get(k, 0) + v
    return RunResult(
        median.backend,
        median.agents,
        median.sessions,
        sum(r.wall for r in rounds),
        [x for r in rounds for x in r.latencies],
        sum(r.retries for r in rounds),
        sum(r.failures for r in rounds),
        sum(r.reads for r in rounds),
        sum(r.writes for r in rounds),
        lost,
        [e for r in rounds for e in r.errors],
        rounds=len(rounds),
        median_rate=median.rate,
    )


def run_agents(
    target: Callable, spec: dict, agents: int, sessions: int, timeout_s: float = 900.0
) -> list[AgentResult]:
    # fork: agents start in milliseconds instead of re-importing everything; the parent
    # holds no threads or open services at this point. Each agent builds its own Services.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(agents)
    results = ctx.Queue()
    share, extra = divmod(sessions, agents)
    procs = [
        ctx.Process(
            target=target,
            args=(spec, a, share + (1 if a < extra else 0), barrier, results),
            daemon=True,
        )
        for a in range(agents)
    ]
    for p in procs:
        p.start()
    out: list[AgentResult] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < agents:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with contextlib.suppress(Exception):
            out.append(results.get(timeout=min(remaining, 5.0)))
        if len(out) < agents and not any(p.is_alive() for p in procs) and results.empty():
            break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    if len(out) < agents:
        out.append(
            AgentResult(
                -1, 0.0, 0.0, [], 0, 0, error=f"only {len(out)} of {agents} agents reported"
            )
        )
    return out


def summarize(backend: str, agents: int, sessions: int, results: list[AgentResult]) -> RunResult:
    ok = [r for r in results if not r.error]
    lost: dict[str, int] = {}
    for r in ok:
        for k, v in r.lost.items():
            lost[k] = lost.get(k, 0) + v
    wall = (max(r.end for r in ok) - min(r.start for r in ok)) if ok else float("nan")
    return RunResult(
        backend,
        agents,
        sessions,
        wall,
        [x for r in ok for x in r.latencies],
        sum(r.retries for r in ok),
        sum(r.failures for r in ok),
        sum(r.reads for r in ok),
        sum(r.writes for r in ok),
        lost,
        [r.error for r in results if r.error],
    )


def micforge_run(
    kind: str,
    agents: int,
    sessions: int,
    s3: dict | None,
    overrides: dict[str, object],
    fsync: bool = True,
) -> RunResult:
    from micforge.auth import AuthDB

    with tempfile.TemporaryDirectory(prefix=f"bench-landing-{kind}{agents}-") as tmp:
        root = Path(tmp)
        auth_url = f"sqlite:///{root / 'auth.db'}"
        auth = AuthDB.open(auth_url, scrypt_params=cheap_scrypt())
        try:
            owner = auth.create_user("bench@example.com")
            auth.create_project(PROJECT, owner.id)
        finally:
            auth.close()
        spec: dict = {
            "overrides": overrides,
            "fsync": fsync,
            "kind": kind,
            "data_dir": str(root),
            "auth_url": auth_url,
            "user_id": owner.id,
            "project": PROJECT,
        }
        if kind == "local":
            spec["root"] = str(root / "store")
        else:
            from tests.fixtures.moto_server import create_bucket

            assert s3 is not None
            spec["bucket"] = create_bucket(s3)
            spec["s3"] = s3
        return summarize(kind, agents, sessions, run_agents(micforge_agent, spec, agents, sessions))


def git_run(agents: int, sessions: int) -> RunResult:
    with tempfile.TemporaryDirectory(prefix=f"bench-landing-git{agents}-") as tmp:
        root = Path(tmp)
        env = git_env(root)
        origin = root / "origin.git"
        git(["init", "-q", "--bare", "-b", "main", str(origin)], root, env)
        seed = root / "seed"
        git(["init", "-q", "-b", "main", str(seed)], root, env)
        (seed / "README").write_text("landing benchmark\n")
        git(["add", "README"], seed, env)
        git(["commit", "-q", "-m", "seed"], seed, env)
        git(["push", "-q", str(origin), "HEAD:main"], seed, env)
        for a in range(agents):
            clone = root / f"clone{a}"
            git(["clone", "-q", str(origin), str(clone)], root, env)
            git(["config", "gc.auto", "0"], clone, env)
            git(["config", "maintenance.auto", "false"], clone, env)
        spec = {"root": str(root)}
        return summarize("git", agents, sessions, run_agents(git_agent, spec, agents, sessions))


# ----------------------------------------------------------------------------- part 2


def synthetic_path(position: int) -> str:
    return f"src/module{position % 997}/file{position}.py"


CLEAN_PATHS = ["bench/brand/new.py", "bench/another/new.py"]


@dataclasses.dataclass
class Planted:
    tip: int
    deep: int  # the position the conflicting session collides with
    seconds: float
    records: int
    rollups: int


def plant_history(
    store, project: str, tip: int, full: bool, probe_paths: list[str], deep: int
) -> Planted:
    """Plant rollups of every complete window (all levels), the head, and landing
    records: all of them when ``full``, else the tip's window, the window of ``deep``,
    and any window whose L1 rollup may contain a probe path (a bloom false positive
    would make the check read those records; a missing record fails loudly)."""
    from micforge.core import (
        EMPTY_TREE_HASH,
        Bloom,
        Head,
        LandingRecord,
        Rollup,
        encode_head,
        encode_landing,
        encode_rollup,
    )
    from micforge.storage import keys
    from micforge.storage.keys import ROLLUP_LEVELS as ROLLUP_SIZES

    t0 = time.perf_counter()
    l1, l2, l3 = ROLLUP_SIZES[1], ROLLUP_SIZES[2], ROLLUP_SIZES[3]
    wanted: set[int] = set()
    rollups = 0

    def window_of(p: int) -> int:
        return ((p - 1) // l1) * l1 + 1

    # One pass: L1 blooms from paths, unioned into the open L2 and L3 blooms.
    top = {2: None, 3: None}
    for start in range(1, tip + 1, l1):
        if start + l1 - 1 > tip:
            break
        for level, size in ((3, l3), (2, l2)):
            if (start - 1) % size == 0 and start + size - 1 <= tip:
                top[level] = Bloom.landing()
        with Bloom.landing() as bloom:
            bloom.add_many([synthetic_path(p) for p in range(start, start + l1)])
            if bloom.may_contain_any(probe_paths):
                wanted.add(start)
            store.put(
                keys.rollup(project, 1, start),
                encode_rollup(Rollup(1, start, l1, bloom.to_bytes())),
            )
            rollups += 1
            for level in (2, 3):
                if top[level] is not None:
                    top[level].union_in_place(bloom)
        for level, size in ((2, l2), (3, l3)):
            window_start = ((start - 1) // size) * size + 1
            if top[level] is not None and start + l1 - 1 == window_start + size - 1:
                data = encode_rollup(Rollup(level, window_start, size, top[level].to_bytes()))
                store.put(keys.rollup(project, level, window_start), data)
                rollups += 1
                top[level].close()
                top[level] = None

    if full:
        positions = range(1, tip + 1)
    else:
        starts = wanted | {window_of(tip), window_of(deep), window_of(tip - 1)}
        positions = sorted(p for s in starts for p in range(s, s + l1) if p <= tip)

    def record(position: int) -> bytes:
        return encode_landing(
            LandingRecord(
                position=position,
                session_id=position.to_bytes(16, "big"),
                parent_tree=EMPTY_TREE_HASH,
                tree_hash=EMPTY_TREE_HASH,  # so a real land() can build on the tip
                hlc=position << 16,
                author="u_synthetic",
                goal=f"synthetic {position}",
                paths=[synthetic_path(position)],
            )
        )

    count = 0
    for position in positions:
        store.put(keys.log(project, position), record(position))
        count += 1
    store.put(
        keys.head(project),
        encode_head(Head(position=tip, tree_hash=EMPTY_TREE_HASH, hlc=tip << 16)),
    )
    return Planted(tip, deep, time.perf_counter() - t0, count, rollups)


@dataclasses.dataclass
class HistoryResult:
    history: int
    planted: Planted
    clean_objects: int
    clean_reads: int  # backend reads of the whole land() call
    clean_latency: float
    clean_linear: int
    conflict_objects: int
    conflict_reads: int
    conflict_latency: float
    conflict_linear: int
    conflict_found: bool
    edge_objects: int
    edge_latency: float
    edge_linear: int


def history_run(history: int, full_max: int) -> HistoryResult:
    from micforge.auth import AuthDB
    from micforge.core import decode_session, encode_session
    from micforge.errors import Conflict
    from micforge.service import build_services
    from micforge.storage import LocalStore, keys

    deep = history // 2 + 17
    with tempfile.TemporaryDirectory(prefix=f"bench-history-{history}-") as tmp:
        root = Path(tmp)
        raw = LocalStore(root / "store", fsync=False)  # throwaway store: planting speed only
        planted = plant_history(
            raw, PROJECT, history, history <= full_max, CLEAN_PATHS + [synthetic_path(deep)], deep
        )
        auth = AuthDB.open(f"sqlite:///{root / 'auth.db'}", scrypt_params=cheap_scrypt())
        owner = auth.create_user("bench@example.com")
        auth.create_project(PROJECT, owner.id)

        @contextlib.contextmanager
        def fresh_services(name: str):  # a cold cache per measurement
            tally = TallyStore(raw)
            services = build_services(bench_config(root / name), store=tally, auth_db=auth)
            try:
                yield services, tally
            finally:
                services.close()

        def session_based_at(services, base: int, paths: list[str]) -> str:
            sid = services.sessions.start(owner, PROJECT, "history probe")["id"]
            ops = []
            for path in paths:
                view, _ = services.blobs.put(owner, PROJECT, path.encode())
                ops.append({"op": "write", "path": path, "blob_hash": view["hash"]})
            services.sessions.record_operations(owner, PROJECT, sid, ops)
            data, etag = raw.get(keys.session(PROJECT, sid))  # an old session: rewrite its base
            rec = dataclasses.replace(decode_session(data), base_position=base)
            raw.put(keys.session(PROJECT, sid), encode_session(rec), if_match=etag)
            return sid

        try:
            with fresh_services("prep") as (services, _):
                conflict_sid = session_based_at(
                    services, 0, [synthetic_path(deep), "bench/not/in/history.py"]
                )
                clean_base = history // 10 + 3
                clean_sid = session_based_at(services, clean_base, CLEAN_PATHS)

            # conflict: based at 0, one real conflict at ~H/2
            with fresh_services("conflict") as (services, tally):
                t0 = time.perf_counter()
                found = False
                try:
                    services.landing.land(owner, PROJECT, conflict_sid)
                except Conflict as exc:
                    found = exc.paths == [synthetic_path(deep)]
                conflict_latency = time.perf_counter() - t0
                conflict_objects = services.landing.last_check.objects_read
                conflict_reads = tally.reads

            # mid-window tip: incomplete windows at every level descend (the edge cost)
            with fresh_services("edge") as (services, _):
                t0 = time.perf_counter()
                edge = services.landing._checker.check(
                    PROJECT, bytes.fromhex(clean_sid), CLEAN_PATHS, 1, history - 1, history - 1
                )
                edge_latency = time.perf_counter() - t0
                assert not edge.conflicts, edge.conflicts

            # clean: based 90% back, lands for real at history + 1
            with fresh_services("clean") as (services, tally):
                t0 = time.perf_counter()
                result = services.landing.land(owner, PROJECT, clean_sid)
                clean_latency = time.perf_counter() - t0
                assert result["position"] == history + 1, result["position"]
                clean_objects = services.landing.last_check.objects_read
                clean_reads = tally.reads
        finally:
            auth.close()
            raw.close()
    return HistoryResult(
        history,
        planted,
        clean_objects,
        clean_reads,
        clean_latency,
        history - clean_base,
        conflict_objects,
        conflict_reads,
        conflict_latency,
        history,
        found,
        edge.objects_read,
        edge_latency,
        history - 1,
    )


# ----------------------------------------------------------------------------- output


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def print_runs(
    runs: dict[tuple[str, int], RunResult], agent_counts: list[int], backends: list[str]
) -> None:
    micforge_backends = [b for b in backends if b != "git"]
    print("\n### Concurrent landings, disjoint paths (one file per session)\n")
    header = ["agents"]
    for b in micforge_backends:
        header += [f"{b} landings/s"]
    if "git" in backends:
        header += ["git landings/s"]
        header += [f"{b}/git" for b in micforge_backends]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for n in agent_counts:
        row = [str(n)]
        for b in micforge_backends:
            row.append(f"{runs[(b, n)].rate:.1f}")
        if "git" in backends:
            g = runs[("git", n)].rate
            row.append(f"{g:.1f}")
            row += [f"{runs[(b, n)].rate / g:.2f}x" for b in micforge_backends]
        print("| " + " | ".join(row) + " |")

    print(
        "\n### Landing latency (micforge: land(); git: push, pull --rebase on rejection, push ...)\n"
    )
    header = [
        "backend",
        "agents",
        "landings",
        "p50 ms",
        "p99 ms",
        "max ms",
        "retries/landing",
        "wall s (all rounds)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for b in backends:
        for n in agent_counts:
            r = runs[(b, n)]
            k = len(r.latencies)
            per = r.retries / k if k else float("nan")
            print(
                f"| {b} | {n} | {k} | {ms(percentile(r.latencies, 50))} | {ms(percentile(r.latencies, 99))} "
                f"| {ms(max(r.latencies, default=float('nan')))} | {per:.2f} | {r.wall:.2f} |"
            )

    if micforge_backends:
        print(
            "\n### micforge backend requests per session (under the cache) and lost conditional writes\n"
        )
        header = [
            "backend",
            "agents",
            "backend req/s",
            "reads/session",
            "writes/session",
            "412s by object (total)",
            "unavailable",
        ]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for b in micforge_backends:
            for n in agent_counts:
                r = runs[(b, n)]
                k = max(1, len(r.latencies))
                lost = ", ".join(f"{kind} {v}" for kind, v in sorted(r.lost.items())) or "none"
                print(
                    f"| {b} | {n} | {(r.reads + r.writes) / r.wall:.0f} | {r.reads / k:.1f} | {r.writes / k:.1f} | {lost} | {r.failures} |"
                )

    errors = [(key, e) for key, r in runs.items() for e in r.errors]
    for (b, n), e in errors:
        print(f"ERROR {b} x{n}: {e}")


def print_history(results: list[HistoryResult], full_max: int) -> None:
    print("\n### Conflict-check cost vs history length (LocalStore, cold cache)\n")
    header = [
        "history",
        "planted (records + rollups, s)",
        "clean 90% back: check objects / land() reads / ms",
        "1 real conflict at H/2: objects / reads / ms",
        "tip mid-window: objects / ms",
        "linear scan would read",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        p = r.planted
        kind = "all records" if r.history <= full_max else "records the checks need"
        found = "" if r.conflict_found else " (NOT FOUND)"
        print(
            f"| {r.history:,} | {p.records:,} + {p.rollups:,} ({kind}), {p.seconds:.1f} s "
            f"| {r.clean_objects} / {r.clean_reads} / {ms(r.clean_latency)} "
            f"| {r.conflict_objects} / {r.conflict_reads} / {ms(r.conflict_latency)}{found} "
            f"| {r.edge_objects} / {ms(r.edge_latency)} "
            f"| {r.clean_linear:,} / {r.conflict_linear:,} / {r.edge_linear:,} |"
        )


# ----------------------------------------------------------------------------- main


def parse_ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sessions",
        type=int,
        default=64,
        help="sessions per configuration, split over the agents",
    )
    parser.add_argument(
        "--agents", type=parse_ints, default=[1, 2, 4, 8], help="agent counts, e.g. 1,2,4,8"
    )
    parser.add_argument("--backends", default="local,moto,git", help="subset of local,moto,git")
    parser.add_argument(
        "--history",
        type=parse_ints,
        default=[100, 10_000, 1_000_000],
        help="history lengths for the conflict check",
    )
    parser.add_argument(
        "--history-max", type=int, default=None, help="skip history lengths above this"
    )
    parser.add_argument(
        "--full-records-max",
        type=int,
        default=10_000,
        help="plant every landing record up to this history length",
    )
    parser.add_argument("--skip-landings", action="store_true", help="only the conflict-check part")
    parser.add_argument(
        "--skip-history", action="store_true", help="only the concurrent-landing part"
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="LocalStore without fsync (git's defaults fsync neither loose objects nor refs)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds per configuration; report the median"
    )
    parser.add_argument(
        "--backoff-base-ms",
        type=int,
        default=None,
        help="landing_backoff_base_ms (default: Config's)",
    )
    parser.add_argument(
        "--backoff-cap-ms",
        type=int,
        default=None,
        help="landing_backoff_cap_ms (default: Config's)",
    )
    args = parser.parse_args(argv)
    # The planted conflict sits at history // 2 + 17, which must lie inside the history.
    if too_short := [h for h in args.history if h // 2 + 17 > h]:
        parser.error(f"--history lengths must be at least 34, got {too_short}")
    overrides = {
        "landing_backoff_base_ms": args.backoff_base_ms,
        "landing_backoff_cap_ms": args.backoff_cap_ms,
    }  # None falls through to the Config default
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"local", "moto", "git"}
    if unknown:
        parser.error(f"unknown backends: {sorted(unknown)}")
    histories = [h for h in args.history if args.history_max is None or h <= args.history_max]

    t_start = time.monotonic()
    print(f"# bench_landing  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {git_version()}, load {os.getloadavg()[0]:.2f}"
    )
    from micforge.config import Config

    effective = Config.load({k: v for k, v in overrides.items() if v is not None}, environ={})
    print(
        f"# landing backoff: base {effective.landing_backoff_base_ms} ms, "
        f"cap {effective.landing_backoff_cap_ms} ms (full jitter); "
        f"LocalStore fsync {'off' if args.no_fsync else 'on'}"
    )
    print(
        f"# sessions/config {args.sessions}, agents {args.agents}, backends {backends}, histories {histories}"
    )

    if not args.skip_landings:
        trials: dict[tuple[str, int], list[RunResult]] = {}
        with contextlib.ExitStack() as stack:
            s3 = stack.enter_context(moto_server()) if "moto" in backends else None
            # Rounds interleave backends at each agent count, so a change in background
            # load hits micforge and git alike.
            for _round in range(args.repeat):
                for n in args.agents:
                    for b in backends:
                        t0 = time.monotonic()
                        if b == "git":
                            r = git_run(n, args.sessions)
                        else:
                            r = micforge_run(
                                b, n, args.sessions, s3, overrides, fsync=not args.no_fsync
                            )
                        trials.setdefault((b, n), []).append(r)
                        print(
                            f"  {b:>5} x{n}: {r.rate:7.1f} landings/s, "
                            f"p50 {ms(percentile(r.latencies, 50))} ms, "
                            f"{len(r.errors)} errors ({time.monotonic() - t0:.0f} s)",
                            file=sys.stderr,
                            flush=True,
                        )
        runs = {key: merge_rounds(rs) for key, rs in trials.items()}
        print(
            f"\n{args.repeat} round(s) per configuration, interleaved; landings/s: the median round; "
            "latency, retries and requests: pooled over all rounds"
        )
        print_runs(runs, args.agents, backends)

    if not args.skip_history and histories:
        results = []
        for h in histories:
            t0 = time.monotonic()
            results.append(history_run(h, args.full_records_max))
            print(f"  history {h:,}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        print_history(results, args.full_records_max)

    print(f"\n# total {time.monotonic() - t_start:.0f} s")
    return 0


def git_version() -> str:
    if shutil.which("git") is None:
        return "git missing"
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())

"""AuthDB under threads, as the threaded WSGI server uses it (both backends)."""

from __future__ import annotations

import random
import threading
import time

from micforge.auth import AuthDB, Role
from micforge.errors import AlreadyExists, Unauthorized

VERIFIERS = 8
RUN_S = 2.0


def test_verify_while_creating_and_revoking(auth_db: AuthDB) -> None:
    user = auth_db.create_user("ada@example.org")
    lock = threading.Lock()
    live: list[tuple[str, str]] = []  # (token id, secret), not yet picked for revocation
    revoking: set[str] = set()  # revoke_token called (may still be in flight)
    revoked: set[str] = set()  # revoke_token returned
    for i in range(20):
        info, secret = auth_db.create_token(user.id, f"seed-{i}")
        live.append((info.id, secret))
    errors: list[str] = []
    counts = {"verified": 0, "rejected": 0, "created": 0, "revoked": 0}
    stop = threading.Event()

    def verifier(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with lock:
                pool = live + [(None, s) for s in revoked] if revoked else list(live)
                token_id, secret = rng.choice(pool)
                was_revoked = secret in revoked
            try:
                verified = auth_db.verify_token(secret)
            except Unauthorized as exc:
                with lock:
                    if secret not in revoking:
                        errors.append(f"live token rejected: {exc}")
                    counts["rejected"] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - any other error is the failure we look for
                errors.append(f"verify raised {exc!r}")
                continue
            with lock:
                if was_revoked:
                    errors.append("a token was accepted after its revoke returned")
                if verified != user:
                    errors.append(f"wrong user {verified}")
                counts["verified"] += 1

    def creator(seed: int) -> None:
        while not stop.is_set():
            try:
                info, secret = auth_db.create_token(user.id, f"made-{seed}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"create raised {exc!r}")
                continue
            with lock:
                live.append((info.id, secret))
                counts["created"] += 1
            time.sleep(0.002)

    def revoker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with lock:
                if len(live) < 5:
                    continue
                token_id, secret = live.pop(rng.randrange(len(live)))
                revoking.add(secret)
            try:
                auth_db.revoke_token(user.id, token_id)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"revoke raised {exc!r}")
                continue
            with lock:
                revoked.add(secret)
                counts["revoked"] += 1
            time.sleep(0.002)

    threads = [threading.Thread(target=verifier, args=(i,)) for i in range(VERIFIERS)]
    threads += [threading.Thread(target=creator, args=(100 + i,)) for i in range(2)]
    threads += [threading.Thread(target=revoker, args=(200 + i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(RUN_S)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors[:5]
    # The race was real: every kind of operation happened many times.
    assert counts["verified"] > 100 and counts["rejected"] > 10, counts
    assert counts["created"] > 10 and counts["revoked"] > 10, counts
    # Afterwards, exactly the revoked tokens fail.
    for secret in revoked:
        try:
            auth_db.verify_token(secret)
        except Unauthorized:
            continue
        raise AssertionError("revoked token accepted")
    assert {t.id for t in auth_db.list_tokens(user.id)} == {token_id for token_id, _ in live}


def test_concurrent_project_creation_has_one_winner(auth_db: AuthDB) -> None:
    users = [auth_db.create_user(f"user{i}@example.org") for i in range(6)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def create(user_id: str) -> None:
        barrier.wait()
        try:
            auth_db.create_project("contested", user_id)
            outcomes.append(user_id)
        except AlreadyExists:
            outcomes.append("taken")

    threads = [threading.Thread(target=create, args=(u.id,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "taken"]
    assert len(outcomes) == len(users) and len(winners) == 1
    assert [m.user_id for m in auth_db.list_members("contested")] == winners


def test_owners_demoting_each_other_keep_one_owner(auth_db: AuthDB) -> None:
    first = auth_db.create_user("first@example.org")
    second = auth_db.create_user("second@example.org")
    for round_ in range(10):
        project = f"p{round_}"
        auth_db.create_project(project, first.id)
        auth_db.set_role(project, second.id, Role.OWNER)
        barrier = threading.Barrier(2)

        def demote(
            user_id: str, project: str = project, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                auth_db.set_role(project, user_id, Role.WRITE)
            except Exception:  # noqa: BLE001 - InvalidRequest for the loser is expected
                pass

        threads = [threading.Thread(target=demote, args=(u.id,)) for u in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        roles = [m.role for m in auth_db.list_members(project)]
        assert roles.count(Role.OWNER) == 1, (project, roles)

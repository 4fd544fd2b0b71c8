"""Invariants stated once and checked on generated inputs (hypothesis)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from micforge.auth import AuthDB, Role, ScryptParams
from micforge.errors import AlreadyExists, Forbidden, InvalidRequest, NotFound, Unauthorized

CHEAP = ScryptParams(n=16)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    candidate=st.one_of(st.text(max_size=80), st.from_regex(r"mic_[0-9A-Za-z]{43}", fullmatch=True))
)
def test_only_the_issued_secret_verifies(auth_db: AuthDB, candidate: str) -> None:
    # Read-only on the shared AuthDB (a rejected token writes nothing), so reusing it across examples is sound.
    user = (
        auth_db.create_user("ada@example.org")
        if not auth_db.list_users()
        else auth_db.list_users()[0]
    )
    tokens = auth_db.list_tokens(user.id)
    if not tokens:
        auth_db.create_token(user.id, "only")
    with pytest.raises(Unauthorized):
        auth_db.verify_token(candidate)


PROJECTS = ["alpha", "beta"]
EMAILS = ["a@example.org", "b@example.org", "c@example.org"]


class Membership(RuleBasedStateMachine):
    """Random role changes against a dict model: check_permission must agree,
    and no sequence of calls leaves a project without an owner."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="micforge-auth-prop-"))
        self.db = AuthDB.open(f"sqlite:///{self.dir / 'auth.db'}", scrypt_params=CHEAP)
        self.users = [self.db.create_user(e).id for e in EMAILS]
        self.roles: dict[tuple[str, str], Role] = {}

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _owners(self, project: str) -> int:
        return sum(1 for (p, _), r in self.roles.items() if p == project and r is Role.OWNER)

    def _exists(self, project: str) -> bool:
        return any(p == project for p, _ in self.roles)

    @rule(project=st.sampled_from(PROJECTS), who=st.integers(0, 2))
    def create(self, project: str, who: int) -> None:
        if self._exists(project):
            with pytest.raises(AlreadyExists):
                self.db.create_project(project, self.users[who])
        else:
            self.db.create_project(project, self.users[who])
            self.roles[(project, self.users[who])] = Role.OWNER

    @rule(
        project=st.sampled_from(PROJECTS), who=st.integers(0, 2), role=st.sampled_from(list(Role))
    )
    def set_role(self, project: str, who: int, role: Role) -> None:
        key = (project, self.users[who])
        if not self._exists(project):
            with pytest.raises(NotFound):
                self.db.set_role(project, self.users[who], role)
        elif (
            self.roles.get(key) is Role.OWNER
            and role is not Role.OWNER
            and self._owners(project) == 1
        ):
            with pytest.raises(InvalidRequest):
                self.db.set_role(project, self.users[who], role)
        else:
            self.db.set_role(project, self.users[who], role)
            self.roles[key] = role

    @precondition(lambda self: bool(self.roles))
    @rule(project=st.sampled_from(PROJECTS), who=st.integers(0, 2))
    def remove(self, project: str, who: int) -> None:
        key = (project, self.users[who])
        if key not in self.roles:
            with pytest.raises(NotFound):
                self.db.remove_member(project, self.users[who])
        elif self.roles[key] is Role.OWNER and self._owners(project) == 1:
            with pytest.raises(InvalidRequest):
                self.db.remove_member(project, self.users[who])
        else:
            self.db.remove_member(project, self.users[who])
            del self.roles[key]

    @invariant()
    def permissions_match_the_model(self) -> None:
        for project in PROJECTS:
            if self._exists(project):
                assert self._owners(project) >= 1
            for user in self.users:
                role = self.roles.get((project, user))
                assert self.db.role_of(project, user) == role
                for required in Role:
                    if role is None:
                        with pytest.raises(NotFound):
                            self.db.check_permission(project, user, required)
                    elif role < required:
                        with pytest.raises(Forbidden):
                            self.db.check_permission(project, user, required)
                    else:
                        assert self.db.check_permission(project, user, required) == role


Membership.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
TestMembership = Membership.TestCase

"""Projects: creation, views with their head, membership (owner only)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from micforge import validate
from micforge.auth import Role, User
from micforge.errors import AlreadyExists, InvalidRequest, NotFound
from micforge.service.common import Authorizer
from micforge.service.content import ContentService, empty_head
from micforge.storage import Store, keys

ROLE_BY_NAME = {"read": Role.READ, "write": Role.WRITE, "owner": Role.OWNER}


class ProjectService:
    def __init__(
        self,
        auth,
        authorizer: Authorizer,
        content: ContentService,
        listing_pool: ThreadPoolExecutor,
        store: Store,
    ) -> None:
        self._auth = auth
        self._store = store
        self._authz = authorizer
        self._content = content
        # Not the services' I/O pool: a head read may use that one itself.
        self._listing_pool = listing_pool

    def _view(self, project_id: str) -> dict:
        return {"id": project_id, "head": self._content.head_unchecked(project_id)}

    def create(self, user: User, project_id: object) -> dict:
        project_id = validate.project_id(project_id)
        # The store is read first: when it is down, the answer is 503 and no project
        # exists (it used to be created in the auth DB and then answered 503: found
        # from outside). No object under the id means no landing and no head either,
        # so the new project's head is the empty one, with nothing more to read.
        if self._store.list(keys.project_prefix(project_id), limit=1):
            try:
                self._auth.get_project(project_id)
            except NotFound:
                # Objects of a project the auth DB does not know: one made after the
                # backup an older auth DB was restored from (`micforge auth restore`).
                # A new owner must not inherit its history, blobs and sessions (found
                # from outside).
                raise AlreadyExists(
                    f"project {project_id} already exists in the store (from before an"
                    " auth DB restore?); choose another id, or restore the auth DB that has it"
                ) from None
            raise AlreadyExists(f"project {project_id} already exists")
        project = self._auth.create_project(project_id, user.id)
        return {"id": project_id, "head": empty_head(project.created_at)}

    def get(self, user: User, project_id: str) -> dict:
        self._authz.require(user, project_id, Role.READ)
        return self._view(project_id)

    def list(self, user: User) -> list[dict]:
        """The projects ``user`` can read, each with its head; the heads are read in
        parallel (one store read or more each: a listing of many projects on S3
        would otherwise wait for them one after another)."""
        ids = [p.id for p in self._auth.list_projects(user.id)]
        if len(ids) < 2:
            return [self._view(project_id) for project_id in ids]
        return list(self._listing_pool.map(self._view, ids))

    def set_member(self, user: User, project_id: str, member_id: str, role: object) -> dict:
        self._authz.require(user, project_id, Role.OWNER)
        if role not in ROLE_BY_NAME:
            raise InvalidRequest(f"role must be one of {sorted(ROLE_BY_NAME)}")
        self._auth.get_user(member_id)  # NotFound for an unknown user
        self._auth.set_role(project_id, member_id, ROLE_BY_NAME[role])
        return {"project": project_id, "user_id": member_id, "role": role}

    def remove_member(self, user: User, project_id: str, member_id: str) -> None:
        self._authz.require(user, project_id, Role.OWNER)
        self._auth.remove_member(project_id, member_id)

"""Identity and authorisation: users, API tokens, projects, per-project roles.

``AuthDB.open(url)`` is the one entry point (SQLite or PostgreSQL by URL).
The service layer asks ``check_permission``; it never queries tables itself.
See docs/auth.md.
"""

from micforge.auth.credentials import ScryptParams
from micforge.auth.db import AuthDB, Member, Project, Role, TokenInfo, User

__all__ = ["AuthDB", "Member", "Project", "Role", "ScryptParams", "TokenInfo", "User"]

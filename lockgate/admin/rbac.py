"""Admin identities and role checks.

Roles, weakest first: viewer (read), member (manage keys), admin (manage the
workspace's objects), owner (everything, org-wide only). A user holds roles
org-wide (``workspace_id: null``) or per workspace; the effective role in a
workspace is the stronger of the two. Org-level objects (integrations, org-wide
aliases and configs, workspaces themselves, admin users, apply) need an org role.

The bootstrap identity is ``LOCKGATE_ADMIN_KEY``: an owner. Admin keys (``lga-…``)
are looked up in the store; the admin API is not the request path, and a revoked
admin key must stop at once on every worker.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from lockgate.errors import AuthenticationFailed, PermissionDenied
from lockgate.governance.auth import hash_key, presented_key
from lockgate.store.control import ADMIN_KEY, ADMIN_USER, AuditActor, ControlStore

ADMIN_KEY_PREFIX = "lga-"
ROLES = {"viewer": 1, "member": 2, "admin": 3, "owner": 4}


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str
    org_role: str | None = None
    workspace_roles: Mapping[str, str] = field(default_factory=dict)

    @property
    def audit(self) -> AuditActor:
        return AuditActor(self.id, self.name)

    def level(self, workspace_id: str | None) -> int:
        org = ROLES.get(self.org_role or "", 0)
        if workspace_id is None:
            return org
        return max(org, ROLES.get(self.workspace_roles.get(workspace_id, ""), 0))

    def require(self, role: str, workspace_id: str | None = None) -> None:
        if self.level(workspace_id) < ROLES[role]:
            where = f"workspace {workspace_id!r}" if workspace_id else "the organization"
            raise PermissionDenied(f"This needs the {role} role in {where}.")

    def visible_workspaces(self) -> set[str] | None:
        """None: every workspace (an org role); otherwise the ones with any role."""
        return None if self.org_role else set(self.workspace_roles)

    def can_see(self, workspace_id: str | None) -> bool:
        return self.level(workspace_id) >= ROLES["viewer"]


BOOTSTRAP = Actor("bootstrap", "LOCKGATE_ADMIN_KEY", "owner")


def actor_from_user(user: Mapping[str, object]) -> Actor:
    org_role: str | None = None
    per_workspace: dict[str, str] = {}
    for binding in user["roles"]:  # type: ignore[attr-defined]
        workspace, role = binding.get("workspace_id"), binding["role"]
        if workspace is None:
            if ROLES[role] > ROLES.get(org_role or "", 0):
                org_role = role
        elif ROLES[role] > ROLES.get(per_workspace.get(workspace, ""), 0):
            per_workspace[workspace] = role
    return Actor(str(user["id"]), str(user["name"]), org_role, per_workspace)


async def authenticate_admin(
    headers: Mapping[str, str], control: ControlStore, admin_key: str | None
) -> Actor:
    key = presented_key(dict(headers))
    if key is None:
        raise AuthenticationFailed(
            "No admin key provided. Send 'Authorization: Bearer <admin key>'.", code="missing_api_key"
        )
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return BOOTSTRAP
    row = await control.find(ADMIN_KEY, key_hash=hash_key(key)) if key.startswith(ADMIN_KEY_PREFIX) else None
    if row is None:
        raise AuthenticationFailed("Invalid admin key.")
    if row["status"] != "active":
        raise AuthenticationFailed("This admin key has been revoked.", code="key_revoked")
    if row["expires_at"] is not None and row["expires_at"] <= time.time():
        raise AuthenticationFailed("This admin key has expired.", code="key_expired")
    user = await control.get(ADMIN_USER, row["user_id"])
    if user is None or user["status"] != "active":
        raise AuthenticationFailed("The admin user of this key is disabled.")
    return actor_from_user(user)

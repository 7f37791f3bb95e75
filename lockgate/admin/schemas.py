"""Request bodies of the admin API. Unknown fields are refused, so a typo names itself.

Update bodies are partial: only the fields sent change (``model_fields_set``),
and an explicit ``null`` clears a nullable field (e.g. ``allowed_models: null``
means "any model").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["owner", "admin", "member", "viewer"]
NAME = r"^[A-Za-z0-9_.-]{1,100}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class WorkspaceCreate(Body):
    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=2000)
    metadata: dict[str, str] = Field(default_factory=dict)
    log_bodies: bool = Field(False, description="Keep redacted, size-capped bodies in request records.")


class WorkspaceUpdate(Body):
    name: str | None = Field(None, pattern=NAME)
    description: str | None = Field(None, max_length=2000)
    metadata: dict[str, str] | None = None
    log_bodies: bool | None = None


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    workspace_id: str = "ws_default"
    expires_at: datetime | None = Field(None, description="ISO 8601 or Unix seconds; unset: never.")
    allowed_models: list[str] | None = Field(None, description="Exact names or fnmatch patterns.")
    metadata: dict[str, str] = Field(default_factory=dict)


class KeyUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    metadata: dict[str, str] | None = None


class IntegrationCreate(Body):
    name: str = Field(pattern=NAME)
    provider: str = Field(min_length=1)
    base_url: str | None = Field(None, pattern=r"^https?://")
    api_key: str | None = Field(None, min_length=1, description="Stored encrypted; never returned.")
    headers: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    workspace_ids: list[str] | None = Field(None, description="Who may use it; unset: every workspace.")
    allowed_models: list[str] | None = None


class IntegrationUpdate(Body):
    base_url: str | None = Field(None, pattern=r"^https?://")
    api_key: str | None = Field(None, min_length=1)
    headers: dict[str, str] | None = None
    options: dict[str, Any] | None = None
    workspace_ids: list[str] | None = None
    allowed_models: list[str] | None = None


class AliasCreate(Body):
    alias: str = Field(min_length=1, max_length=200)
    workspace_id: str | None = Field(None, description="Unset: every workspace sees it.")
    targets: list[str] | None = Field(None, min_length=1)
    config_id: str | None = Field(None, validate_default=True)

    @field_validator("config_id")
    @classmethod
    def _one_of(cls, value: str | None, info: Any) -> str | None:
        if (value is None) == (info.data.get("targets") is None):
            raise ValueError("give either 'targets' or 'config_id'")
        return value


class AliasUpdate(Body):
    targets: list[str] | None = Field(None, min_length=1)
    config_id: str | None = None


class ConfigCreate(Body):
    id: str | None = Field(None, pattern=NAME, description="Unset: generated.")
    workspace_id: str | None = None
    description: str = Field("", max_length=2000)
    config: dict[str, Any]


class ConfigUpdate(Body):
    description: str | None = Field(None, max_length=2000)
    config: dict[str, Any] | None = None


class RoleBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: str | None = None
    role: Role

    @field_validator("role")
    @classmethod
    def _owner_is_org_wide(cls, value: str, info: Any) -> str:
        if value == "owner" and info.data.get("workspace_id") is not None:
            raise ValueError("owner is an organization role; leave workspace_id unset")
        return value


class UserCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    roles: list[RoleBinding] = Field(min_length=1)


class UserUpdate(Body):
    email: str | None = Field(None, max_length=320)
    roles: list[RoleBinding] | None = Field(None, min_length=1)
    status: Literal["active", "disabled"] | None = None


class AdminKeyCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    expires_at: datetime | None = None


class ApplyRequest(Body):
    yaml: str = Field(description="The lockgate.yaml text.")

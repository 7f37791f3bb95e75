"""Import from the official MCP registry's ``server.json`` (schema 2025-x): name, version, remotes.

Only remote servers are imported (``remotes[].type`` streamable-http or sse): packages
(npm, pypi, oci) would need a command on the stdio allow-list, which an import must not add.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from lockgate.errors import BadRequest
from lockgate.mcp.specs import McpServerSpec

_TRANSPORTS = {"streamable-http": "streamable_http", "streamable_http": "streamable_http", "sse": "sse"}


def spec_from_server_json(
    doc: dict[str, Any], *, name: str | None = None, secret: str | None = None
) -> McpServerSpec:
    remotes = [r for r in doc.get("remotes") or () if isinstance(r, dict) and r.get("type") in _TRANSPORTS]
    if not remotes:
        raise BadRequest(
            "server.json has no streamable-http or sse remote; packages are not imported "
            "(stdio commands must be registered by hand, on the allow-list).",
            param="server.remotes",
        )
    remote = remotes[0]
    registry_name = str(doc.get("name") or "")
    # "io.github.acme/orders-mcp" -> "orders-mcp": the part after the namespace, made a valid name.
    local = name or re.sub(r"[^a-z0-9-]+", "-", registry_name.rpartition("/")[2].lower()).strip("-")
    headers = {
        h["name"]: h["value"]
        for h in remote.get("headers") or ()
        if isinstance(h, dict) and isinstance(h.get("value"), str) and not h.get("isSecret")
    }
    try:
        return McpServerSpec(
            name=local[:63] or "imported",
            version=str(doc.get("version") or "1"),
            description=str(doc.get("description") or "")[:2000],
            transport=_TRANSPORTS[remote["type"]],  # type: ignore[arg-type]
            url=remote.get("url"),
            headers=headers,
            secret=secret,
            tags=[f"registry:{registry_name}"] if registry_name else [],
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "server"
        raise BadRequest(f"server.json: {field}: {first['msg']}", param=f"server.{field}") from None

"""Builds the ASGI application and owns startup and shutdown.

The data plane is a raw ASGI app: a dict from path to handler, resolved once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from lockgate.admin.app import AdminContext, create_admin_app
from lockgate.admin.declarative import ApplyResult, apply_config
from lockgate.admin.snapshot import Snapshot, build_snapshot
from lockgate.admin.snapshot_loader import SnapshotLoader
from lockgate.catalog import Catalog
from lockgate.config import FileConfig, credentials_from_env, load_file
from lockgate.errors import AuthenticationFailed, LockgateError, MethodNotAllowed, NotFound
from lockgate.gateway.attempts import UpstreamClient
from lockgate.gateway.cache import ResponseCache
from lockgate.gateway.credentials import CredentialTokens
from lockgate.gateway.pipeline import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, Pipeline
from lockgate.gateway.strategies import Engine
from lockgate.governance.admission import Governor
from lockgate.governance.alerts import Alerts, revoke_key
from lockgate.governance.auth import Authenticator, presented_key
from lockgate.governance.policy import matches
from lockgate.governance.rules import reservation_lease
from lockgate.governance.secrets import load_secret_box
from lockgate.governance.spend import SpendBook
from lockgate.mcp.gateway import build_mcp_proxy
from lockgate.server.http import Request, send_bytes, send_error, send_json
from lockgate.server.types import Receive, Scope, Send
from lockgate.settings import Settings
from lockgate.state import open_store
from lockgate.state.counters import open_counters
from lockgate.state.notify import ConfigNotifier
from lockgate.store.control import ControlState, ControlStore
from lockgate.store.db import Store
from lockgate.telemetry import metrics as metrics_module
from lockgate.telemetry import tracing
from lockgate.telemetry.hub import Telemetry
from lockgate.telemetry.metrics import Metrics
from lockgate.telemetry.retention import Retention
from lockgate.telemetry.spill import SpillFile
from lockgate.telemetry.writer import RecordWriter

log = logging.getLogger("lockgate")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class ControlPlane:
    """The store, secrets and snapshot machinery; shared by the server and the CLI."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        # Parsed up front so a bad file fails the start with the field named.
        self.file_config: FileConfig | None = load_file(settings.config) if settings.config else None
        self.store = Store(settings.database_url)
        self.control = ControlStore(self.store)
        self.secrets = load_secret_box(settings.secret_key, data_dir=self.store.data_dir)
        self.env_credentials = credentials_from_env()

    def build_snapshot(self, state: ControlState) -> Snapshot:
        return build_snapshot(
            state, self.secrets, self.catalog, self.env_credentials, limit_divisor=self.limit_divisor
        )

    @property
    def limit_divisor(self) -> int:
        """With --approximate-limits each worker enforces its share of every limit (DESIGN §6)."""
        return (
            self.settings.workers if self.settings.approximate_limits and not self.settings.redis_url else 1
        )

    async def prepare(self) -> ApplyResult | None:
        """Migrate and apply the declarative file, once per start, serialised across processes."""
        async with self.store.startup_lock():
            await self.store.migrate(lock=False, secrets=self.secrets)
            if self.file_config is None:
                return None
            return await apply_config(self.control, self.secrets, self.file_config)


class Lockgate:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog.default()
        self.plane = ControlPlane(settings, self.catalog)
        self.store = self.plane.store
        self.notifier = ConfigNotifier(settings.redis_url) if settings.redis_url else None
        # Bearer tokens minted for integrations that need them (Vertex service accounts, Entra ID),
        # kept in step with each snapshot's integrations.
        self.tokens = CredentialTokens()
        self.snapshots = SnapshotLoader(
            self.plane.control,
            self._build_snapshot,
            interval=settings.config_poll_interval,
            notifier=self.notifier,
        )
        spill_dir = Path(settings.log_spill_dir) if settings.log_spill_dir else None
        spill_dir = spill_dir or (self.store.data_dir or Path(".lockgate")) / "spill"
        self.writer = RecordWriter(
            self.store,
            batch_size=settings.log_batch_size,
            flush_interval=settings.log_flush_interval,
            max_queued=settings.log_queue_size,
            spill=SpillFile(spill_dir, max_bytes=settings.log_spill_max_bytes),
        )
        self.retention = Retention(
            self.store.logs,
            days=settings.log_retention_days,
            rollup_days=settings.rollup_retention_days,
            minute_rollup_hours=settings.rollup_minute_hours,
        )
        self.telemetry = Telemetry(
            self.writer,
            Metrics(max_series=settings.metrics_max_series),
            tracing.from_env(),
            lambda: self.snapshots.current.version if self.snapshots.loaded else 0,
            store_records=settings.log_requests,
            open_circuits=lambda: self.engine.health.open_circuits(),
        )
        self.client = UpstreamClient(
            connect_timeout=settings.connect_timeout, request_timeout=settings.request_timeout
        )
        self.engine = Engine(self.client)  # circuit breakers and retry budgets: per worker
        self.cache = ResponseCache(
            open_store(
                settings.redis_url,
                max_bytes=settings.cache_max_bytes,
                max_entries=settings.cache_max_entries,
            )
        )
        self.auth = Authenticator(master_key=settings.master_key, demo=settings.demo)
        self.counters = open_counters(settings.redis_url, timeout=settings.state_timeout)
        self.spend = SpendBook(
            self.store,
            self.counters,
            flush_interval=settings.ledger_flush_interval,
            retention_days=settings.ledger_retention_days,
            divisor=self.plane.limit_divisor,
        )
        self.alerts = Alerts(
            self.store,
            default_webhook=settings.alert_webhook_url,
            revoke=lambda key_id, reason: revoke_key(
                self.plane.control, self._admin_ctx.changed, key_id, reason
            ),
        )
        self.governor = Governor(
            self.counters,
            self.spend,
            self.alerts,
            self.catalog,
            lease=reservation_lease(settings.request_timeout),
            fail_open=settings.limits_on_redis_failure == "open",
            approximate=self.plane.limit_divisor > 1,
        )
        self.pipeline = Pipeline(
            auth=self.auth,
            snapshots=self.snapshots,
            engine=self.engine,
            cache=self.cache,
            writer=self.telemetry,
            catalog=self.catalog,
            max_body_bytes=settings.max_body_bytes,
            deadline=settings.request_timeout,
            tokens=self.tokens,
            governor=self.governor,
            tracing=self.telemetry.tracing,
            log_body_max_bytes=settings.log_body_max_bytes,
        )
        self.mcp = build_mcp_proxy(self)
        self._admin_ctx = AdminContext(
            self.plane.control,
            self.plane.secrets,
            self.snapshots,
            self.notifier,
            settings.admin_key,
            self.governor,
            self.mcp,
            settings.mcp_stdio_commands,
        )
        self.admin = create_admin_app(self._admin_ctx)
        self.ready = False
        self._handlers: dict[str, tuple[str, Handler]] = {
            "/v1/chat/completions": ("POST", partial(self.pipeline.handle, CHAT)),
            "/v1/completions": ("POST", partial(self.pipeline.handle, COMPLETIONS)),
            "/v1/embeddings": ("POST", partial(self.pipeline.handle, EMBEDDINGS)),
            "/v1/messages": ("POST", partial(self.pipeline.handle, MESSAGES)),
            "/v1/models": ("GET", self._models),
            "/healthz": ("GET", self._healthz),
            "/readyz": ("GET", self._readyz),
            "/metrics": ("GET", self._metrics),
        }

    def _build_snapshot(self, state: ControlState) -> Snapshot:
        snapshot = self.plane.build_snapshot(state)
        self.tokens.sync(cred for table in snapshot.tables.values() for cred in table.credentials)
        self.mcp.on_snapshot(snapshot)  # kill switch: cut in-flight calls before the swap
        return snapshot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path.startswith("/admin/"):  # the control plane: FastAPI, off the data-plane fast path
            await self.admin(scope, receive, send)
            return
        if path == "/mcp" or path.startswith("/mcp/"):  # the MCP gateway answers in JSON-RPC
            await self.mcp.handle(scope, receive, send)
            return
        if path.startswith("/.well-known/oauth-protected-resource"):  # RFC 9728, for /mcp's OAuth
            await self.mcp.metadata(scope, receive, send)
            return
        dialect = "anthropic" if path == "/v1/messages" else "openai"
        entry = self._handlers.get(path.rstrip("/") or "/")
        try:
            if entry is None:
                raise NotFound(f"Unknown path {path!r}.")
            method, handler = entry
            if scope["method"] != method:
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {path}; use {method}.")
            await handler(scope, receive, send)
        except LockgateError as exc:
            await send_error(send, exc, dialect)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            # If the response had already started, uvicorn refuses this and closes the connection.
            with contextlib.suppress(RuntimeError):
                await send_error(send, LockgateError("Internal error in Lockgate."), dialect)

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        snapshot = self.snapshots.current
        principal = self.auth.authenticate(Request.from_scope(scope).headers, snapshot)
        allowed = principal.allowed_models
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": owner}
            for model, owner in snapshot.routes(principal.workspace_id).listed_models()
            if allowed is None or matches(model, allowed)
        ]
        await send_json(send, 200, {"object": "list", "data": data})

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok"})

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        store_ok = await self.store.ping()
        ready = self.ready and store_ok and self.snapshots.loaded
        body = {
            "status": "ready" if ready else "not_ready",
            "config": self.snapshots.loaded,
            "config_version": self.snapshots.current.version if self.snapshots.loaded else None,
            "store": store_ok,
            "records_queued": self.writer.queued,
            "records_spilled": self.writer.spilled,
            "records_dropped": self.writer.dropped,
        }
        await send_json(send, 200 if ready else 503, body)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self.settings.metrics_token
        if token is not None:
            presented = presented_key(Request.from_scope(scope).headers) or ""
            if not hmac.compare_digest(presented.encode(), token.encode()):
                exc = AuthenticationFailed("/metrics needs Authorization: Bearer <LOCKGATE_METRICS_TOKEN>.")
                await send_error(send, exc, headers=[(b"www-authenticate", b'Bearer realm="metrics"')])
                return
        body = self.telemetry.render_metrics()
        await send_bytes(send, 200, body, [(b"content-type", metrics_module.CONTENT_TYPE.encode())])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.plane.prepare()
        await self.snapshots.load()
        self.snapshots.start()
        await self.client.start()
        await self.tokens.start(self.client.session)
        self.telemetry.start()
        self.retention.start()
        await self._seed_spend()
        self.spend.start()
        self.alerts.start()
        self.ready = True

    async def _seed_spend(self) -> None:
        """Counters start from the ledger; with Redis down this waits no longer than a few seconds."""
        try:
            async with asyncio.timeout(10):
                await self.spend.ensure_seeded()
        except Exception as exc:
            log.warning(
                "spend counters not seeded at start (%s); the first request that needs them retries", exc
            )

    async def shutdown(self) -> None:
        self.ready = False
        await self.mcp.close()
        await self.snapshots.close()
        if self.notifier is not None:
            await self.notifier.close()
        await self.alerts.close()
        await self.spend.close()
        await self.counters.close()
        await self.retention.close()
        await self.telemetry.close()
        await self.tokens.close()
        await self.client.close()
        await self.cache.close()
        await self.store.close()


def create_app(settings: Settings | None = None) -> Lockgate:
    """uvicorn's factory: each worker builds its own app from the environment."""
    return Lockgate(settings or Settings.from_env())

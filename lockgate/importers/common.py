"""What both importers share: findings, secret references, integration naming, the result."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from lockgate.providers.base import get_provider

_ENV_PREFIX = "os.environ/"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_BARE_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ImportFailed(ValueError):
    """The source cannot become a working Lockgate document; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Finding:
    # unsupported: not carried over. changed: carried over, but it behaves differently or
    # needs something from you (an env var to set, a mapping to check).
    level: Literal["unsupported", "changed"]
    path: str  # where in the source file, e.g. "router_settings.context_window_fallbacks"
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


@dataclass(slots=True)
class ImportResult:
    source: str  # "litellm" | "portkey"
    document: dict[str, Any]  # a lockgate.yaml mapping
    findings: list[Finding] = field(default_factory=list)

    @property
    def env_vars(self) -> list[str]:
        """The variables the document reads; the gateway's environment must set them."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, str):
                found.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", value))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.document)
        return sorted(found)

    def check(self) -> None:
        """The document must be a valid lockgate.yaml; an importer bug is an ImportFailed here."""
        from lockgate.config import FileConfig

        try:
            FileConfig.model_validate(self.document)
        except ValidationError as exc:
            raise ImportFailed(f"the imported document is not a valid lockgate.yaml: {exc}") from exc

    def to_yaml(self, origin: str) -> str:
        """The document, headed by comments that list the findings and the variables to set."""
        lines = [f"# Imported by `lockgate import {self.source}` from {origin}."]
        if self.env_vars:
            lines.append("# The gateway's environment must set: " + ", ".join(self.env_vars))
        if self.findings:
            lines.append("# Review before applying:")
            lines.extend(f"#   {f.line()}" for f in self.findings)
        body = yaml.dump(self.document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
        return "\n".join(lines) + "\n" + body


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: shared policy dicts are written out in full, as a person would."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class Findings(list[Finding]):
    def unsupported(self, path: str, message: str) -> None:
        self.append(Finding("unsupported", path, message))

    def changed(self, path: str, message: str) -> None:
        self.append(Finding("changed", path, message))


def env_reference(value: Any) -> str | None:
    """``os.environ/VAR`` (LiteLLM) or ``${VAR}`` -> ``${VAR}``; anything else -> None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith(_ENV_PREFIX) and _BARE_ENV.match(text[len(_ENV_PREFIX) :]):
        return "${" + text[len(_ENV_PREFIX) :] + "}"
    return text if _ENV_REF.match(text) else None


def plain_or_env(value: Any, path: str, findings: Findings) -> str | None:
    """A non-secret string setting (a URL, an API version): env references kept, else as is."""
    if value is None:
        return None
    ref = env_reference(value)
    if ref is not None:
        return ref
    if not isinstance(value, str | int | float):
        findings.unsupported(path, f"expected a string, got {type(value).__name__}; not imported")
        return None
    return str(value)


def secret_reference(
    value: Any, integration: str, path: str, findings: Findings, field: tuple[str | int, ...] = ()
) -> str | None:
    """A secret as a reference. A literal is replaced by a variable named after the integration
    (and ``field``, for a secret option or header): an imported file never carries a secret in clear."""
    if value is None or value == "":
        return None
    ref = env_reference(value)
    if ref is not None:
        return ref
    # The name `lockgate.yaml` export uses for the same value.
    from lockgate.governance.secret_fields import env_var_name

    var = env_var_name(integration, *field)
    findings.changed(path, f"a literal secret is not copied; set {var} to it (the document reads ${{{var}}})")
    return "${" + var + "}"


def slug(text: str, limit: int = 60) -> str:
    out = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return out[:limit] or "unnamed"


def unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def provider_available(name: str) -> bool:
    return get_provider(name) is not None


class IntegrationBook:
    """Integrations an import creates, one per distinct credential (provider, URL, secret, options).

    Names are the provider id, then the provider plus the host's first label when one
    provider has several endpoints (``azure-my-endpoint-europe``), then a number.
    """

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._by_signature: dict[tuple[Any, ...], str] = {}
        self._taken: set[str] = set()

    def reserve(self, name: str) -> bool:
        """Claim a fixed name (a Portkey virtual key); False when it is already taken."""
        if name in self._taken:
            return False
        self._taken.add(name)
        return True

    def add(
        self,
        provider: str,
        *,
        base_url: str | None = None,
        secret: Any = None,
        secret_path: str = "",
        findings: Findings | None = None,
        options: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        name: str | None = None,
        headers_path: str | None = None,
        options_path: str | None = None,
    ) -> str:
        """The integration's name; ``*_path`` say where headers and options sit in the source,
        for the findings about their secrets (default: beside ``secret_path``)."""
        signature = (provider, base_url, repr(secret), repr(sorted((options or {}).items())), repr(headers))
        if name is None and signature in self._by_signature:
            return self._by_signature[signature]
        if name is None:
            name = unique(self._name_for(provider, base_url, secret), self._taken)
        item: dict[str, Any] = {"name": name, "provider": provider}
        if base_url:
            item["base_url"] = base_url
        ref = secret_reference(secret, name, secret_path, findings if findings is not None else Findings())
        if ref:
            item["api_key"] = ref
        where = {"headers": headers_path, "options": options_path}
        for column, values in (("headers", headers), ("options", options)):
            if values:
                source = where[column] or f"{secret_path.rpartition('.')[0] or '(integration)'}.{column}"
                item[column] = self._references(provider, column, values, name, source, findings)
        self.items.append(item)
        self._by_signature[signature] = name
        return name

    @staticmethod
    def _references(
        provider: str, column: str, values: dict[str, Any], name: str, source: str, findings: Findings | None
    ) -> dict[str, Any]:
        """Options or headers with each secret (the ``secret_fields`` rule) a reference, as export has it."""
        from lockgate.governance.secret_fields import split

        out = copy.deepcopy(values)
        for path, value in split(provider, column, values)[1].items():
            steps = path[1:]
            named = ("header", *steps) if column == "headers" else steps
            where = ".".join(map(str, [source, *steps]))
            ref = secret_reference(
                value, name, where, findings if findings is not None else Findings(), named
            )
            node = out
            for step in steps[:-1]:
                node = node[step]
            node[steps[-1]] = ref
        return out

    def _name_for(self, provider: str, base_url: str | None, secret: Any) -> str:
        if provider not in self._taken:
            return provider
        # A second credential of one provider: name it by what tells it apart, the host's
        # first label (contoso-eu.openai.azure.com) or the secret's variable (OPENAI_KEY_TEAM_B).
        label = ""
        host = urlsplit(base_url).hostname if base_url and not base_url.startswith("${") else None
        if host and not host.replace(".", "").isdigit() and host != "localhost":
            label = host.split(".")[0]
        else:
            ref = env_reference(secret)
            if ref is not None:
                noise = {*provider.split("-"), "api", "key", "token", "secret"}
                words = [w for w in ref[2:-1].lower().split("_") if w and w not in noise]
                label = "-".join(words)
        if not label:
            return provider
        return slug(label if label.startswith(provider) else f"{provider}-{label}")

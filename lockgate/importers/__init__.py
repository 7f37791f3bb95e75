"""Importers: other gateways' configs -> a ``lockgate.yaml`` document.

``litellm.py`` reads a LiteLLM proxy ``config.yaml``; ``portkey.py`` a Portkey
config JSON. Both are pure functions from parsed data to an ``ImportResult``:
no I/O, no environment reads, so they are unit-testable on fixtures and the CLI
(``lockgate import``) decides whether to print, write or apply the result.

Rules both follow:
- secrets stay references: ``os.environ/VAR`` becomes ``${VAR}``; a literal
  secret is never copied, it becomes ``${LOCKGATE_SECRET_<NAME>}`` and a finding
  says which variable to set;
- whatever is not carried over, or carried over with different meaning, is a
  ``Finding`` naming its source path; nothing is dropped silently.
"""

from lockgate.importers.common import Finding, ImportFailed, ImportResult

__all__ = ["Finding", "ImportFailed", "ImportResult"]

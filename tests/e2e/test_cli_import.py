"""`lockgate import litellm|portkey` as users run it: print, --output, --apply (with --dry-run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from lockgate.importers.litellm import import_litellm
from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import ADMIN_KEY, admin_client, admin_gateway, ok
from tests.importer_kit import FIXTURES, load, secret_env

ROOT = Path(__file__).resolve().parents[2]


def lockgate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", **env},
        timeout=60,
        check=False,
    )


def test_print_and_output(tmp_path: Path) -> None:
    source = FIXTURES / "litellm" / "simple.yaml"
    printed = lockgate("import", "litellm", str(source))
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout) == import_litellm(load("litellm/simple.yaml")).document
    # Findings and the variables to set go to stderr, so `> lockgate.yaml` keeps a clean file.
    assert "changed model_list.1.litellm_params.api_key: a literal secret is not copied" in printed.stderr
    assert (
        "must set: LOCKGATE_SECRET_ANTHROPIC, LOCKGATE_SECRET_LITELLM_MASTER_KEY, OPENAI_API_KEY"
        in printed.stderr
    )
    assert "literal-secret-do-not-copy" not in printed.stdout + printed.stderr

    target = tmp_path / "imported.yaml"
    portkey = FIXTURES / "portkey" / "fallback.json"
    written = lockgate(
        "import", "portkey", str(portkey), "--id", "support", "--alias", "support-bot", "-o", str(target)
    )
    assert written.returncode == 0 and written.stdout == "", written.stderr
    document = yaml.safe_load(target.read_text())
    assert document["configs"][0]["id"] == "support"
    assert document["models"] == [{"alias": "support-bot", "config": "support"}]
    assert target.read_text().startswith("# Imported by `lockgate import portkey` from fallback.json.")


def test_unusable_input_exits_2_with_the_reason(tmp_path: Path) -> None:
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text('{"targets": [{"virtual_key": "prod-7f3a"}]}')
    failed = lockgate("import", "portkey", str(unnamed))
    assert failed.returncode == 2 and "prod-7f3a; pass --virtual-key NAME=PROVIDER" in failed.stderr
    given = lockgate("import", "portkey", str(unnamed), "--virtual-key", "prod-7f3a=together-ai")
    assert given.returncode == 0, given.stderr
    assert yaml.safe_load(given.stdout)["integrations"][0]["provider"] == "together"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "is not valid JSON" in lockgate("import", "portkey", str(broken)).stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("general_settings: {}\n")
    result = lockgate("import", "litellm", str(empty))
    assert result.returncode == 2 and "model_list" in result.stderr


def test_apply_through_the_admin_api_then_serve(
    tmp_path: Path, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quick-start config with its endpoints read from the environment, as LiteLLM allows.
    source = load("litellm/simple.yaml")
    bases = {
        "openai": "IMPORT_OPENAI_BASE",
        "anthropic": "IMPORT_ANTHROPIC_BASE",
        "ollama_chat": "IMPORT_OLLAMA_BASE",
    }
    for entry in source["model_list"]:
        entry["litellm_params"]["api_base"] = (
            "os.environ/" + bases[entry["litellm_params"]["model"].split("/")[0]]
        )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(source))
    # The gateway (in this process) reads the variables the imported document references.
    env = secret_env(["OPENAI_API_KEY", "LOCKGATE_SECRET_ANTHROPIC", "LOCKGATE_SECRET_LITELLM_MASTER_KEY"])
    env |= {
        "IMPORT_OPENAI_BASE": f"{mock.url}/v1",
        "IMPORT_ANTHROPIC_BASE": mock.url,
        "IMPORT_OLLAMA_BASE": mock.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with admin_gateway(tmp_path, {}) as gw:
        cli_env = {"LOCKGATE_URL": gw.url, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}
        plan = lockgate("import", "litellm", str(path), "--apply", "--dry-run", **cli_env)
        assert plan.returncode == 0, plan.stderr
        assert re.search(r"create\s+integration\s+openai\s", plan.stdout), plan.stdout
        assert re.search(r"create\s+api_key\s+default/litellm-master-key\s", plan.stdout)
        with admin_client(gw) as admin:
            assert ok(admin.get("/integrations"))["data"] == []  # a dry run writes nothing
        applied = lockgate("import", "litellm", str(path), "--apply", **cli_env)
        assert applied.returncode == 0, applied.stderr
        assert "no changes" in lockgate("import", "litellm", str(path), "--apply", **cli_env).stdout

        client = openai.OpenAI(
            base_url=gw.url + "/v1", api_key=env["LOCKGATE_SECRET_LITELLM_MASTER_KEY"], max_retries=0
        )
        client.chat.completions.create(model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}])
        sent = mock.requests[-1]
        assert (
            sent["path"] == "/v1/messages"
            and sent["headers"]["x-api-key"] == env["LOCKGATE_SECRET_ANTHROPIC"]
        )
        with admin_client(gw) as admin:
            stored = {i["name"]: i for i in ok(admin.get("/integrations"))["data"]}
            # Imported objects are API-managed: the next start-up apply of a lockgate.yaml keeps them.
            assert stored["openai"]["source"] == "api" and stored["ollama"]["base_url"] == f"{mock.url}/v1"

from pathlib import Path

import pytest

from lockgate.config import ConfigError, credentials_from_env, load_file
from lockgate.errors import ModelNotFound
from lockgate.gateway.routing import RouteTable
from lockgate.providers.base import Credential

GOOD = """
integrations:
  - name: prod-openai
    provider: openai
    api_key: ${TEST_LOCKGATE_KEY}
  - name: claude
    provider: anthropic
    base_url: ${TEST_LOCKGATE_BASE:-https://anthropic.example}
models:
  - alias: smart
    targets: ["@prod-openai/gpt-4o", "@claude/claude-sonnet-4-5"]
"""


def test_load_file_interpolates_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LOCKGATE_KEY", "sk-secret")
    path = tmp_path / "lockgate.yaml"
    path.write_text(GOOD)
    config = load_file(path)
    assert config.integrations[0].api_key == "sk-secret"
    assert config.integrations[1].base_url == "https://anthropic.example"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("integrations: [{name: x, provider: nosuch}]", "unknown provider"),
        ("models: [{alias: a, targets: []}]", "models.0.targets"),
        ("integrations: [{name: x, provider: openai, colour: red}]", "colour"),
        ("- just a list", "mapping"),
        ("integrations: [", "not valid YAML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_file(path)


def test_credentials_from_env() -> None:
    creds = credentials_from_env(
        {"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gk", "OPENAI_BASE_URL": "http://x/v1"}
    )
    by_name = {c.name: c for c in creds}
    assert by_name["openai"].base_url == "http://x/v1" and by_name["groq"].api_key == "gk"
    assert "anthropic" not in by_name


def test_route_resolution() -> None:
    creds = [
        Credential("openai", "openai", "https://api.openai.com/v1", "sk"),
        Credential("team-claude", "anthropic", "https://api.anthropic.com", "sk-ant"),
    ]
    table = RouteTable(creds)
    assert table.resolve("@team-claude/claude-sonnet-4-5").targets[0].provider.name == "anthropic"
    assert table.resolve("openai/gpt-4.1").targets[0].model == "gpt-4.1"
    # A bare catalog model goes to its provider's default credential.
    assert table.resolve("gpt-4o").targets[0].credential.name == "openai"
    # Anthropic has a credential only under a custom name, which is its default too.
    assert table.resolve("claude-sonnet-4-5").targets[0].credential.name == "team-claude"
    for bad in ("@missing/gpt-4o", "@team-claude", "nosuch/model", "totally-unknown"):
        with pytest.raises(ModelNotFound):
            table.resolve(bad)


def test_cloud_credentials_from_env() -> None:
    creds = credentials_from_env(
        {
            "GOOGLE_API_KEY": "g-key",
            "CO_API_KEY": "co-key",
            "AZURE_OPENAI_API_KEY": "az-key",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
            "AZURE_OPENAI_API_VERSION": "2025-04-01-preview",
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION": "eu-central-1",
            "GOOGLE_APPLICATION_CREDENTIALS": "/etc/sa.json",
            "GOOGLE_CLOUD_PROJECT": "proj",
        }
    )
    by_name = {c.name: c for c in creds}
    assert by_name["gemini"].api_key == "g-key" and by_name["cohere"].api_key == "co-key"
    assert by_name["azure"].base_url == "https://res.openai.azure.com"
    assert by_name["azure"].options == {"api_version": "2025-04-01-preview"}
    assert by_name["bedrock"].options == {
        "region": "eu-central-1",
        "access_key_id": "AKID",
        "secret_access_key": "secret",
    }
    assert by_name["vertex"].options == {"service_account": "/etc/sa.json", "project": "proj"}
    assert "azure-foundry" not in by_name  # no AZURE_AI_* variables
    bearer = {c.name: c for c in credentials_from_env({"AWS_BEARER_TOKEN_BEDROCK": "ABSK"})}
    assert bearer["bedrock"].api_key == "ABSK" and bearer["bedrock"].options == {}


@pytest.mark.parametrize(
    ("integration", "needle"),
    [
        ("{name: v, provider: vertex, api_key: tok}", "options.project"),
        ("{name: b, provider: bedrock, options: {access_key_id: AKID}}", "secret_access_key"),
        ("{name: b, provider: bedrock}", "bedrock needs"),
        ("{name: a, provider: azure, api_key: k}", "needs a base_url"),
    ],
)
def test_cloud_integrations_are_checked_at_load(tmp_path: Path, integration: str, needle: str) -> None:
    from lockgate.config import credentials_from_file

    path = tmp_path / "lockgate.yaml"
    path.write_text(f"integrations: [{integration}]")
    with pytest.raises(ConfigError, match=needle):
        credentials_from_file(load_file(path))


def test_the_openai_path_never_loads_botocore() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lockgate.app\n"
        "from lockgate.providers.base import Body, Credential, get_provider\n"
        "get_provider('openai').build_request('chat', Body({'model': 'm', 'messages': []}),"
        " Credential('o', 'openai', 'http://x', 'k'))\n"
        "assert get_provider('bedrock') and get_provider('vertex')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'botocore'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

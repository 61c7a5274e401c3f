"""costaudit.toml: sources, store path, unknown sections and refused credentials."""

from __future__ import annotations

import pytest

from costaudit.config import load_config
from costaudit.errors import UsageError


def _write(tmp_path, text: str):
    path = tmp_path / "costaudit.toml"
    path.write_text(text)
    return path


def test_sources_and_store(tmp_path):
    path = _write(tmp_path, """
[store]
path = "data/audit.duckdb"

[[sources]]
name = "local-exports"
provider = "local"
path = "exports/"

[[sources]]
name = "aws-prod"
provider = "aws"
bucket = "billing"
prefix = "cur"
""")
    config = load_config(path)
    assert [(s.name, s.provider) for s in config.sources] == [("local-exports", "local"), ("aws-prod", "aws")]
    assert config.sources[1].settings == {"bucket": "billing", "prefix": "cur"}
    assert config.store_path() == (tmp_path / "data" / "audit.duckdb").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sorces]\n", "unknown section"),
        ("[[sources]]\nname = 'x'\nprovider = 'oracle'\n", "provider must be one of"),
        ("[[sources]]\nprovider = 'aws'\n", "needs a name"),
        ("[[sources]]\nname = 'a'\nprovider = 'aws'\n[[sources]]\nname = 'a'\nprovider = 'gcp'\n", "two sources"),
        ("[[sources]]\nname = 'a'\nprovider = 'aws'\naws_secret_access_key = 'x'\n", "looks like a credential"),
        ("[[sources]]\nname = 'a'\nprovider = 'azure'\naccount_key = 'x'\n", "looks like a credential"),
        ("not toml = = 1", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        load_config(_write(tmp_path, text))


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.path is None and config.sources == ()

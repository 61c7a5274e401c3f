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


@pytest.mark.parametrize("command", [("audit",), ("summary",), ("report", "--format", "json")])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[supress]]\nfingerprint = "abcdef12"\nreason = "x"\n', "unknown section(s) supress"),
        ('[run]\nfail_on = "hgh"\n', "run.fail_on must be one of"),
        ('[reports]\nformat = ["html"]\n', "unknown key(s) in reports: format"),
        ('[store]\npth = "x.duckdb"\n', "unknown key(s) in store: pth"),
    ],
)
def test_every_command_reading_the_file_refuses_its_typos(cli, tmp_path, db_path, command, text, message):
    """audit, summary and report read costaudit.toml too: a misspelt section or key there (a
    suppression that would silently not apply) is a usage error, as it is for `run`."""
    from .focus_rows import row, write

    assert cli("load", str(write(tmp_path / "bill.csv", [row()]))).exit_code == 0
    config = _write(tmp_path, text)
    result = cli(*command, "--config", str(config), *(("--out", str(tmp_path)) if command[0] == "report" else ()))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_bad_memory_limit_in_the_environment_is_one_line(cli, tmp_path, monkeypatch):
    from .focus_rows import row, write

    assert cli("load", str(write(tmp_path / "bill.csv", [row()]))).exit_code == 0
    monkeypatch.setenv("COSTAUDIT_MEMORY_LIMIT", "lots")
    result = cli("sql", "SELECT 1")
    assert result.exit_code == 2
    assert result.output.strip() == ('error: COSTAUDIT_MEMORY_LIMIT = \'lots\': expected an amount of memory such as '
                                     '"2GB" or "512MB"')
    monkeypatch.setenv("COSTAUDIT_MEMORY_LIMIT", "1GB")
    assert cli("sql", "SELECT 1").exit_code == 0


def test_audit_of_a_store_that_does_not_exist_is_refused(cli, db_path):
    result = cli("audit")
    assert result.exit_code == 1 and "no store here yet" in result.output
    assert not db_path.exists()


def test_summary_window_must_be_ordered(cli, tmp_path):
    from .focus_rows import row, write

    assert cli("load", str(write(tmp_path / "bill.csv", [row()]))).exit_code == 0
    result = cli("summary", "--since", "2024-05", "--until", "2024-01")
    assert result.exit_code == 2 and "must be before --until" in result.output


def test_audit_checks_the_rule_parameters_before_the_analysis(cli, tmp_path):
    from .focus_rows import row, write

    assert cli("load", str(write(tmp_path / "bill.csv", [row()]))).exit_code == 0
    config = _write(tmp_path, '[rules.compute_rightsize]\ncpu_p95_threshold = "abc"\n')
    result = cli("audit", "--config", str(config))
    assert result.exit_code == 2
    assert "rules.compute_rightsize.cpu_p95_threshold = 'abc'" in result.output
    assert "analysis" not in result.output  # refused before any work

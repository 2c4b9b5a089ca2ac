"""Settings: defaults, relative paths, and refusals that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.errors import ConfigError
from tests.fixtures.postgres import PostgresServer


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a config file the gateway uses ./inbox, ./outbox, ./var and SQLite in ./var."""
    monkeypatch.chdir(tmp_path)
    settings = config.load(None)
    assert settings.paths.inbox == tmp_path / "inbox"
    assert settings.paths.outbox == tmp_path / "outbox"
    assert settings.sqlite_path == tmp_path / "var" / "gateway.db"
    assert settings.rules.window_days == 91
    assert settings.rules.cutoff_days == 2
    assert settings.intake.settle_seconds == 2.0


def test_relative_paths_are_taken_from_the_files_folder(tmp_path: Path) -> None:
    """A relative path in a config file is resolved against the folder holding the file."""
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "g.toml"
    path.write_text('[paths]\ninbox = "../drop"\n[store]\nurl = "sqlite:///state/g.db"\n')
    settings = config.load(path)
    assert settings.paths.inbox == folder / "../drop"
    assert settings.sqlite_path == folder / "state/g.db"


def test_committed_config_spells_out_the_defaults() -> None:
    """config/gateway.toml parses and equals the built-in defaults (paths aside)."""
    root = Path(__file__).resolve().parent.parent
    settings = config.load(root / "config" / "gateway.toml")
    assert settings.paths.inbox.resolve() == root / "inbox"
    assert settings.sqlite_path is not None
    assert settings.sqlite_path.resolve() == root / "var" / "gateway.db"
    assert settings.intake == config.Intake()
    assert settings.rules == config.Rules()
    assert settings.log == config.Log()


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[intake]\nsettle_seconds = 'soon'\n", "intake.settle_seconds"),
        ("[intake]\nbogus = 1\n", "intake.bogus"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[rules]\nwindow_days = 1.5\n", "rules.window_days"),
        ("[rules]\nout_of_scope_grades = 'GPST1'\n", "rules.out_of_scope_grades"),
        ("[rules]\nduplicate_report_weekday = 'someday'\n", "rules.duplicate_report_weekday"),
        ("[rules]\nconfirm_hours = 0\n", "rules.confirm_hours"),
        ("[log]\nformat = 'xml'\n", "log.format"),
        ("[store]\nurl = 'mysql://x'\n", "store.url"),
        ("[[sftp]]\nname = 'a'\nhost = 'h'\nuser = 'u'\n", "sftp[0].private_key"),
        (
            "[[sftp]]\nname='a'\nhost='h'\nuser='u'\nprivate_key='nokey'\nknown_hosts='nokh'\n",
            "sftp[0].private_key",
        ),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    """An unknown key, a wrong type or a missing key file is refused with the key's name."""
    path = tmp_path / "g.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        config.load(path)


@pytest.mark.parametrize(
    ("paths", "said"),
    [
        ('var = "inbox/esr"', "paths.var: {root}/inbox/esr is inside paths.inbox"),
        ('outbox = "inbox/esr/out"', "paths.outbox: {root}/inbox/esr/out is inside paths.inbox"),
        ('outbox = "var/outbox"', "paths.outbox: {root}/var/outbox is inside paths.var"),
        ('inbox = "outbox/in"', "paths.inbox: {root}/outbox/in is inside paths.outbox"),
        ('outbox = "inbox"', "paths.inbox: {root}/inbox is the same folder as paths.outbox"),
    ],
)
def test_drop_folders_and_var_must_be_apart(tmp_path: Path, paths: str, said: str) -> None:
    """A folder inside another (or the same): refused, naming both. With ``var/`` in an inbox,
    the daemon would have taken its own database for a partner's file."""
    path = tmp_path / "g.toml"
    path.write_text(f"[paths]\n{paths}\n")
    with pytest.raises(ConfigError) as refused:
        config.load(path)
    assert str(refused.value).startswith(said.format(root=tmp_path))
    assert str(refused.value).endswith("the inbox, outbox and var folders must be apart")


def test_a_var_linked_into_the_inbox_is_refused(tmp_path: Path) -> None:
    """Apart as the file system has them: ``var`` a symbolic link to a folder in the inbox."""
    (tmp_path / "inbox" / "esr" / "state").mkdir(parents=True)
    (tmp_path / "var").symlink_to(tmp_path / "inbox" / "esr" / "state")
    path = tmp_path / "g.toml"
    path.write_text("[log]\nlevel = 'info'\n")
    with pytest.raises(ConfigError, match=r"paths\.var: .* is inside paths\.inbox"):
        config.load(path)


def test_the_sqlite_store_must_not_lie_in_a_drop_folder(tmp_path: Path) -> None:
    """``store.url`` pointing into the inbox: refused (the file would be taken as inbound)."""
    path = tmp_path / "g.toml"
    path.write_text('[store]\nurl = "sqlite:///inbox/esr/g.db"\n')
    with pytest.raises(ConfigError, match=r"store\.url: the SQLite file .* is inside paths\.inbox"):
        config.load(path)
    path.write_text('[store]\nurl = "sqlite:///state/g.db"\n')
    assert config.load(path).sqlite_path == tmp_path / "state" / "g.db"


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    """Naming a config file that does not exist is an error, not a silent default."""
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "absent.toml")


def test_the_postgresql_example_is_a_working_configuration(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """config/postgresql.example.toml loads, and with its URL pointed at a real server (and its
    folders at a temporary place) a node opens the store under its own name."""
    example = Path(__file__).resolve().parent.parent / "config" / "postgresql.example.toml"
    settings = config.load(example)
    assert settings.store.url.startswith("postgresql://")
    assert settings.store.node == "gateway-1"
    assert settings.intake.polling_observer
    text = example.read_text().replace("/srv/dit-gateway", str(tmp_path)).replace(
        "postgresql://gateway@db.example.nhs.uk/dit_gateway", postgres_server.new_database())
    local = tmp_path / "node.toml"
    local.write_text(text)
    from gateway.pipeline import Pipeline  # noqa: PLC0415
    from gateway.store import open_store  # noqa: PLC0415

    node = config.load(local)
    with open_store(node) as store:
        assert Pipeline(node, store, {}).owner.startswith("gateway-1:")

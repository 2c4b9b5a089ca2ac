"""The throw-away OpenSSH server used by the SFTP tests, checked with the real OpenSSH clients."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.sshd import SftpError, SshServer, start_sshd


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A fresh sshd on 127.0.0.1 with throw-away keys, killed at teardown."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.kill()


def _refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


def _wait_for_log(server: SshServer, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        if time.monotonic() >= deadline:
            pytest.fail(f"sshd never logged {text!r}:\n{server.log_text()}")
        time.sleep(0.02)


def test_sftp_put_then_list(sshd: SshServer, tmp_path: Path) -> None:
    """The real sftp client puts a file into a remote inbox and lists it back."""
    local = tmp_path / "TIS_0001.xml"
    local.write_bytes(b"<doc>hello</doc>\n")
    inbox = sshd.root / "inbox"

    result = sshd.sftp_batch(
        [f"mkdir {inbox}", f"put {local} {inbox}/TIS_0001.xml", f"ls -1 {inbox}"]
    )

    assert f"{inbox}/TIS_0001.xml" in result.stdout.splitlines()
    assert (inbox / "TIS_0001.xml").read_bytes() == b"<doc>hello</doc>\n"


def test_kill_refuses_then_start_serves_again(sshd: SshServer, tmp_path: Path) -> None:
    """After kill() the port refuses connections; after start() a put works on the same port."""
    port = sshd.port
    sshd.kill()
    assert not sshd.running
    assert _refuses(sshd.host, port)

    sshd.start()
    local = tmp_path / "after-restart.txt"
    local.write_text("again\n")
    sshd.sftp_batch([f"put {local} {sshd.root}/after-restart.txt"])

    assert sshd.port == port
    assert (sshd.root / "after-restart.txt").read_text() == "again\n"


def test_kill_drops_an_open_session(sshd: SshServer) -> None:
    """kill() also kills the session processes, so a connected client sees its connection drop."""
    with subprocess.Popen(
        sshd.sftp_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as client:
        _wait_for_log(sshd, "Starting session: subsystem 'sftp'")
        sessions = sshd.session_pids()
        assert sessions

        sshd.kill()
        _, stderr = client.communicate(input=f"ls {sshd.root}\n", timeout=30)

    assert client.returncode != 0, stderr
    assert not [pid for pid in sessions if _alive(pid)]


def test_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    """With an empty known_hosts and StrictHostKeyChecking=yes the client refuses to connect."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")

    with pytest.raises(SftpError, match="Host key verification failed"):
        sshd.sftp_batch([f"ls {sshd.root}"], known_hosts=empty)

    assert sshd.host_public_key.split()[1] in sshd.known_hosts.read_text()


def test_encrypted_key_needs_its_passphrase(sshd: SshServer, tmp_path: Path) -> None:
    """The encrypted client key opens only with its passphrase, and then logs in."""
    key = str(sshd.encrypted_client_key)
    wrong = subprocess.run(
        ["ssh-keygen", "-y", "-f", key, "-P", "wrong"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    right = subprocess.run(
        ["ssh-keygen", "-y", "-f", key, "-P", sshd.passphrase],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert wrong.returncode != 0
    assert right.returncode == 0, right.stderr
    pub = Path(key + ".pub").read_text().split()[:2]
    assert right.stdout.split()[:2] == pub

    # Batch mode cannot ask for the passphrase, so the key is unusable without it ...
    with pytest.raises(SftpError):
        sshd.sftp_batch([f"ls {sshd.root}"], identity=sshd.encrypted_client_key)
    # ... and with it (given through SSH_ASKPASS) the server accepts the key.
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{sshd.passphrase}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    argv = ["sftp", "-P", str(sshd.port), *sshd.ssh_options(identity=sshd.encrypted_client_key),
            f"{sshd.user}@{sshd.host}"]  # fmt: skip
    login = subprocess.run(
        argv, input=f"ls {sshd.root}\n", capture_output=True, text=True, env=env, timeout=30,
        check=False, start_new_session=True,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr


def test_two_servers_at_once(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Several servers run side by side on their own ports with their own keys."""
    other = start_sshd(tmp_path_factory.mktemp("sshd-other"))
    try:
        assert other.port != sshd.port
        assert other.host_public_key != sshd.host_public_key
        sshd.sftp_batch([f"ls {sshd.root}"])
        other.sftp_batch([f"ls {other.root}"])
        with pytest.raises(SftpError, match="Host key verification failed"):
            other.sftp_batch([f"ls {other.root}"], known_hosts=sshd.known_hosts)
    finally:
        other.stop()
    assert _refuses(other.host, other.port)

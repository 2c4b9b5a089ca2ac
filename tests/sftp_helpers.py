"""Helpers of the SFTP tests: a partner's folders on the throw-away sshd, files put there with
the real OpenSSH ``sftp`` client, partner settings and config tables pointing at it."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.config import SftpPartner
from tests.fixtures.sshd import SshServer

MB = 1024 * 1024


@dataclass
class Remote:
    """One test's folders on the server (the server runs here: remote paths are local paths)."""

    server: SshServer
    base: Path

    @property
    def inbox(self) -> Path:
        """Where the partner leaves files for the gateway."""
        return self.base / "outgoing"

    @property
    def done(self) -> Path:
        """Where taken files are moved."""
        return self.base / "processed"

    @property
    def outbox(self) -> Path:
        """Where the gateway delivers outputs."""
        return self.base / "incoming"

    def put(self, staging: Path, files: dict[str, bytes]) -> None:
        """Put files into the remote inbox with the real ``sftp`` client, in the order given."""
        staging.mkdir(parents=True, exist_ok=True)
        commands = [f"-mkdir {self.base}", f"-mkdir {self.inbox}"]
        for name, data in files.items():
            (staging / name).write_bytes(data)
            commands.append(f'put "{staging / name}" "{self.inbox / name}"')
        self.server.sftp_batch(commands, timeout=300)

    def put_folder(self, folder: Path) -> None:
        """Put every file of a local folder into the remote inbox in one ``sftp`` session."""
        self.server.sftp_batch(
            [f"-mkdir {self.base}", f"-mkdir {self.inbox}", f"put {folder}/* {self.inbox}/"],
            timeout=300,
        )

    def listing(self, folder: Path) -> list[str]:
        """Names in a remote folder (dot-names included), sorted."""
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def remote_for(server: SshServer, name: str) -> Remote:
    """Fresh folders for one test on a shared server."""
    base = server.root / name
    base.mkdir(parents=True, exist_ok=False)
    return Remote(server, base)


def partner_for(remote: Remote, **overrides: object) -> SftpPartner:
    """Settings of a partner on ``remote``: fast polls, short deadlines."""
    server = remote.server
    values: dict[str, object] = {
        "name": "hee-tis",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "private_key": server.client_key,
        "known_hosts": server.known_hosts,
        "remote_inbox": str(remote.inbox),
        "remote_done": str(remote.done),
        "remote_outbox": str(remote.outbox),
        "channel": "tis",
        "poll_seconds": 0.2,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return SftpPartner(**values)  # type: ignore[arg-type]


def partner_toml(partner: SftpPartner) -> str:
    """The ``[[sftp]]`` table of a partner, for a config file."""
    lines = ["[[sftp]]"]
    for key in (
        "name", "host", "port", "user", "private_key", "known_hosts", "passphrase_env",
        "remote_inbox", "channel", "remote_done", "remote_outbox", "deliver", "poll_seconds",
        "timeout_seconds",
    ):
        value = getattr(partner, key)
        if isinstance(value, tuple):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        elif isinstance(value, int | float):
            text = str(value)
        else:
            text = f'"{value}"'
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def big_bytes(mb: int) -> Iterator[bytes]:
    """``mb`` MiB of incompressible, position-dependent bytes, a MiB at a time."""
    block = os.urandom(MB)
    for i in range(mb):
        yield i.to_bytes(8, "big") + block[8:]


def write_big(path: Path, mb: int) -> str:
    """Write ``mb`` MiB to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for chunk in big_bytes(mb):
            fh.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    """SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]

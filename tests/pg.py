"""PostgreSQL fixtures: a throwaway server for the test session, a fresh database per test.

``pg_server`` runs ``initdb`` + ``pg_ctl start`` on a free loopback port in a temporary folder
(as the ``postgres`` user when the tests run as root, since initdb refuses root) and stops it
at the end of the session. ``pg_url`` creates a new, empty database for one test and returns
its SQLAlchemy URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/test_...``).

Missing server binaries fail the tests loudly: `make test` installs them (.ci/system-deps).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

import pytest

INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin "
                "or on PATH. Run `make system-deps` (or `apt-get install -y postgresql`); `make test` "
                "does this for you.")


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def admin(self):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                               autocommit=True)


def find_bin_dir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for directory in reversed(candidates):
        if os.path.exists(os.path.join(directory, "initdb")):
            return directory
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _run(args: list[str]) -> None:
    done = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def pg_server():
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    root = tempfile.mkdtemp(prefix="promptlab-pg-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = os.path.join(root, "data")
    _run([f"{bin_dir}/initdb", "-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8",
          "--no-sync"])
    started, last_error = None, None
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        try:
            _run([f"{bin_dir}/pg_ctl", "-D", data, "-l", os.path.join(root, "server.log"), "-w",
                  "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "start"])
            started = PgServer("127.0.0.1", port)
            break
        except RuntimeError as exc:
            last_error = exc
    if started is None:
        log = open(os.path.join(root, "server.log")).read() if os.path.exists(
            os.path.join(root, "server.log")) else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {last_error}\n{log}", pytrace=False)
    try:
        yield started
    finally:
        subprocess.run(_as_server_user([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server; dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    with pg_server.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

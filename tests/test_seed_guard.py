"""The schema Job seeds only an empty database: its guard (shell + SQL, in an init container
on the MariaDB image) and its schema command, extracted from the Job the program renders and
run against a real MariaDB server (Debian `mariadb-server`) on a free loopback port."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import ROOT

from components.app import database

DATA = ROOT / "tests" / "data"
APP_PASSWORD = "guard-test-password"
BINARIES = ("mariadbd", "mariadb-install-db", "mariadb")
INSTALL = ["--auth-root-authentication-method=socket", "--skip-test-db"]


def binary(name: str) -> str:
    """The path of a MariaDB program; Debian puts the server in /usr/sbin, off a user's PATH."""
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail(f"{name} not found: install the Debian package mariadb-server")
    return found


# CI installs mariadb-server (scripts/test.sh), so there the tests must run, never skip.
pytestmark = pytest.mark.skipif(
    os.environ.get("CI") != "true"
    and any(
        shutil.which(b, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None for b in BINARIES
    ),
    reason="MariaDB is not installed (Debian package: mariadb-server); scripts/test.sh installs it",
)


@dataclass
class Server:
    port: int
    socket: Path

    def root(self, sql: str) -> str:
        """Run SQL as the server's root (socket auth) and return the tab-separated rows."""
        done = subprocess.run(
            [binary("mariadb"), "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"],
            input=sql,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A MariaDB server with the bookstore database and app user, stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="ocm-fleet-mariadb-"))
    datadir, sock = workdir / "data", workdir / "mysqld.sock"
    # mariadbd refuses to run as root unless told to; the same flag names the current user.
    user = ["--user=root"] if os.geteuid() == 0 else [f"--user={getpass.getuser()}"]
    subprocess.run(
        [binary("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", *user, *INSTALL],
        capture_output=True,
        check=True,
    )
    port = _free_port()
    listen = [
        "--bind-address=127.0.0.1",
        f"--port={port}",
        f"--socket={sock}",
        f"--pid-file={workdir / 'mysqld.pid'}",
        "--skip-name-resolve",
    ]
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [binary("mariadbd"), "--no-defaults", f"--datadir={datadir}", *user, *listen],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        running = Server(port=port, socket=sock)
        for _ in range(150):
            if proc.poll() is not None:
                pytest.fail(f"mariadbd exited: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                running.root("SELECT 1;")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        else:
            pytest.fail("mariadbd did not accept connections within 30 s")
        running.root(
            f"CREATE DATABASE {database.DB_NAME};"
            f"CREATE USER '{database.DB_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';"
            f"GRANT ALL ON {database.DB_NAME}.* TO '{database.DB_USER}'@'%';"
        )
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def rendered_pod() -> dict:
    return database.schema_job_spec("mariadb.bookstore-data.svc.cluster.local", "creds")[
        "template"
    ]["spec"]


@dataclass
class Job:
    """The schema Job's two steps, as rendered, pointed at the test server."""

    server: Server
    workdir: Path

    def env(self, container: dict) -> dict[str, str]:
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        password_file = self.workdir / "DB_PASSWORD"
        password_file.write_text(APP_PASSWORD)
        env.update(
            DB_HOST="127.0.0.1",
            DB_PORT=str(self.server.port),
            DB_PASSWORD_FILE=str(password_file),
            SEED_DECISION_FILE=str(self.workdir / "decision"),
            PATH=f"{self.workdir / 'bin'}:{os.environ['PATH']}",
        )
        return env

    def guard(self) -> subprocess.CompletedProcess:
        (container,) = rendered_pod()["initContainers"]
        return subprocess.run(
            container["command"], env=self.env(container), capture_output=True, text=True
        )

    def schema(self) -> subprocess.CompletedProcess:
        (container,) = rendered_pod()["containers"]
        return subprocess.run(
            container["command"], env=self.env(container), capture_output=True, text=True
        )

    def run(self) -> str:
        """Both steps in order, as the pod runs them; returns the guard's decision."""
        guard = self.guard()
        assert guard.returncode == 0, f"the seed guard failed: {guard.stderr}"
        schema = self.schema()
        assert schema.returncode == 0, f"the schema step failed: {schema.stderr}{schema.stdout}"
        return (self.workdir / "decision").read_text().strip()


@pytest.fixture
def job(server: Server, tmp_path: Path) -> Iterator[Job]:
    """The Job against an empty bookstore database, with `bundle exec rails db:migrate` and
    `db:seed` played by the shopapi's schema and seed as SQL."""
    server.root(f"DROP TABLE IF EXISTS {database.DB_NAME}.books;")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    client = (
        f"mariadb --no-defaults -h 127.0.0.1 -P {server.port} -u {database.DB_USER} "
        f"-p{APP_PASSWORD} {database.DB_NAME}"
    )
    bundle = bindir / "bundle"
    bundle.write_text(
        "#!/bin/sh\n"
        "# Stands in for the shopapi's `bundle exec rails db:migrate|db:seed`.\n"
        'case "$*" in\n'
        f'  "exec rails db:migrate") exec {client} < {DATA / "bookstore_schema.sql"} ;;\n'
        f'  "exec rails db:seed") exec {client} < {DATA / "bookstore_seed.sql"} ;;\n'
        '  *) echo "unexpected: bundle $*" >&2; exit 2 ;;\n'
        "esac\n"
    )
    bundle.chmod(bundle.stat().st_mode | stat.S_IXUSR)
    yield Job(server=server, workdir=tmp_path)


def books(server: Server) -> list[str]:
    rows = server.root(f"SELECT title FROM {database.DB_NAME}.books ORDER BY id;")
    return rows.splitlines()


def test_the_guard_that_runs_is_the_file_that_ships():
    (guard,) = rendered_pod()["initContainers"]
    assert guard["command"] == ["sh", "-c", database.SEED_GUARD.read_text()]
    assert guard["image"].startswith("mariadb:") or "mariadb@sha256:" in guard["image"]


def test_an_empty_database_is_migrated_and_seeded(job, server):
    assert job.run() == "seed"
    assert books(server) == ["Seeded one", "Seeded two", "Seeded three"]


def test_a_rerun_keeps_every_book_including_ones_added_since(job, server):
    assert job.run() == "seed"
    server.root(
        f"INSERT INTO {database.DB_NAME}.books (title, created_at, updated_at) "
        "VALUES ('Added by a customer', NOW(), NOW());"
    )
    assert job.run() == "keep", "a database with books must not be seeded again"
    assert books(server) == ["Seeded one", "Seeded two", "Seeded three", "Added by a customer"]
    assert job.run() == "keep"
    assert "Added by a customer" in books(server), "no later run may delete data"


def test_the_stand_in_seed_deletes_books_as_the_real_one_does(job, server):
    """Control: without the guard, the seed wipes the catalogue; so the test above can fail."""
    job.run()
    server.root(
        f"INSERT INTO {database.DB_NAME}.books (title, created_at, updated_at) "
        "VALUES ('Added by a customer', NOW(), NOW());"
    )
    server.root(f"USE {database.DB_NAME};\n" + (DATA / "bookstore_seed.sql").read_text())
    assert "Added by a customer" not in books(server)


def test_a_migrated_database_without_books_is_seeded(job, server):
    job.run()
    server.root(f"DELETE FROM {database.DB_NAME}.books;")
    assert job.run() == "seed"
    assert len(books(server)) == 3


def test_an_unreachable_database_decides_nothing(job, server):
    job.server = Server(port=_free_port(), socket=server.socket)
    guard = job.guard()
    assert guard.returncode != 0, "the guard must fail when it cannot ask the database"
    assert not (job.workdir / "decision").exists(), "and must not leave a decision behind"
    schema = job.schema()
    assert schema.returncode != 0, "without a decision the schema step must not seed"


def test_a_wrong_password_decides_nothing(job, server):
    (job.workdir / "bin").mkdir(exist_ok=True)
    (container,) = rendered_pod()["initContainers"]
    env = job.env(container)
    Path(env["DB_PASSWORD_FILE"]).write_text("not-the-password")
    done = subprocess.run(container["command"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and not Path(env["SEED_DECISION_FILE"]).exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_guard_passes_shellcheck():
    done = subprocess.run(
        ["shellcheck", "--shell=sh", str(database.SEED_GUARD)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout

"""The database's second home, for real: two MariaDB servers (Debian `mariadb-server`) on
loopback, each started with the server options the program ships (components/app/
replication.cnf) and driven by the shipped replication.sh: seed, replicate over TLS, lose the
primary mid-stream, promote, fence, rejoin or re-clone.

Figures from the runs are printed (`pytest -s`) and collected in FIGURES."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from components.app import database, replication

BINARIES = ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump", "openssl")
SEARCH = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"
APP_PASSWORD = "replicationTestApp1"
REPLICATION_PASSWORD = "replicationTestRepl1"
SEED_ROWS = 30_000
"""Rows of 1 kB the primary holds before the replica is seeded from it."""
FIGURES: dict[str, float] = {}

# CI installs mariadb-server (scripts/test.sh), so there the tests must run, never skip.
pytestmark = pytest.mark.skipif(
    os.environ.get("CI") != "true" and any(shutil.which(b, path=SEARCH) is None for b in BINARIES),
    reason="MariaDB is not installed (Debian package: mariadb-server); scripts/test.sh installs it",
)


def binary(name: str) -> str:
    found = shutil.which(name, path=SEARCH)
    if found is None:
        pytest.fail(f"{name} not found: install the Debian package mariadb-server")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user() -> list[str]:
    # mariadbd refuses to run as root unless told to; the same flag names the current user.
    return ["--user=root"] if os.geteuid() == 0 else [f"--user={getpass.getuser()}"]


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ocm-fleet-replication-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_tls(d: Path) -> Tls:
    """A CA and a server certificate for 127.0.0.1 signed by it, as the graph makes them."""
    d.mkdir()

    def openssl(*words: str) -> None:
        # Each argument is split on spaces, except a subject (it starts with /).
        args = [w for part in words for w in ([part] if part.startswith("/") else part.split())]
        subprocess.run([binary("openssl"), *args], cwd=d, capture_output=True, check=True)

    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj",
        "/CN=ocm-fleet database CA",
        "-keyout ca.key -out ca.pem",
    )
    openssl(
        "req -newkey rsa:2048 -nodes -subj", "/CN=127.0.0.1", "-keyout server.key -out server.csr"
    )
    # The replica checks the primary's name against the certificate (--ssl-verify-server-cert).
    (d / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1",
        "-extfile san.cnf -out server.pem",
    )
    return Tls(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


@pytest.fixture(scope="module")
def tls(workdir: Path) -> Tls:
    return make_tls(workdir / "tls")


@pytest.fixture(scope="module")
def impostor_tls(workdir: Path) -> Tls:
    """Certificates as good as the fleet's, from a CA the fleet does not know."""
    return make_tls(workdir / "impostor-tls")


@pytest.fixture(scope="module")
def template(workdir: Path) -> Path:
    """A freshly installed data directory, copied for each server (installing takes seconds)."""
    datadir = workdir / "template"
    subprocess.run(
        [
            binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={datadir}",
            *_user(),
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        capture_output=True,
        check=True,
    )
    return datadir


@dataclass
class Server:
    """One MariaDB server on loopback, started with the shipped replication.cnf."""

    name: str
    server_id: int
    home: Path
    tls: Tls | None
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None
    replication_password: str = REPLICATION_PASSWORD
    """What the Secret on this server's home holds (rotation changes it)."""

    @property
    def socket(self) -> Path:
        return self.home / "mysqld.sock"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self) -> None:
        tls = (
            [f"--ssl-ca={self.tls.ca}", f"--ssl-cert={self.tls.cert}", f"--ssl-key={self.tls.key}"]
            if self.tls
            else []
        )
        args = [
            binary("mariadbd"),
            # The shipped options, exactly; only identity, TLS files and places are added.
            f"--defaults-file={replication.SERVER_OPTIONS}",
            f"--datadir={self.home / 'data'}",
            *_user(),
            f"--server-id={self.server_id}",
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            f"--socket={self.socket}",
            f"--pid-file={self.home / 'mysqld.pid'}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            *tls,
            *self.extra,
        ]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name}: mariadbd exited: {self.log.read_text()[-3000:]}")
            if self.alive():
                return
            time.sleep(0.1)
        pytest.fail(f"{self.name}: mariadbd did not accept connections within 30 s")

    def alive(self) -> bool:
        done = subprocess.run(
            [binary("mariadb"), f"--defaults-extra-file={self.defaults}", "-e", "SELECT 1"],
            capture_output=True,
        )
        return done.returncode == 0

    def kill(self) -> None:
        """SIGKILL: the server loses everything it had not written, as in a lost region."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def defaults(self) -> Path:
        """The client option file logging in as root, as the pod's root-client.cnf does."""
        path = self.home / "root-client.cnf"
        if not path.exists():
            path.write_text(f"[client]\nsocket={self.socket}\nuser=root\n")
        return path

    def root(self, sql: str) -> str:
        done = subprocess.run(
            [binary("mariadb"), f"--defaults-extra-file={self.defaults}", "-N", "-B"],
            input=sql,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{self.name}: {sql!r} failed: {done.stderr}"
        return done.stdout.strip()

    def status(self, name: str) -> str:
        return self.root(f"SHOW GLOBAL STATUS LIKE '{name}'").split("\t")[1]

    def app(self, sql: str) -> subprocess.CompletedProcess:
        """SQL as the bookstore's app user, over TCP, as the shopapi connects."""
        return subprocess.run(
            [
                binary("mariadb"),
                "--no-defaults",
                "-h127.0.0.1",
                f"-P{self.port}",
                f"-u{database.DB_USER}",
                f"-p{APP_PASSWORD}",
                database.DB_NAME,
                "-N",
                "-B",
            ],
            input=sql,
            capture_output=True,
            text=True,
        )

    def ids(self) -> set[int]:
        rows = self.root(f"SELECT id FROM {database.DB_NAME}.ledger")
        return {int(r) for r in rows.split()}

    def script(self, command: str, peer: Server | None = None, **env: str):
        """Runs the shipped replication.sh for this server."""
        password = self.home / "replication-password"
        password.write_text(self.replication_password)
        environment = {
            "PATH": os.environ["PATH"],
            "LOCAL_DEFAULTS": str(self.defaults),
            "REPLICATION_USER": replication.REPLICATION_USER,
            "REPLICATION_PASSWORD_FILE": str(password),
            "DATABASES": database.DB_NAME,
            "WAIT_SECONDS": "30",
            **env,
        }
        if peer is not None:
            environment.update(
                PEER_HOST="127.0.0.1", PEER_PORT=str(peer.port), TLS_CA=str(self.tls_ca())
            )
        return subprocess.run(
            ["bash", str(replication.SCRIPT), command],
            env=environment,
            capture_output=True,
            text=True,
        )

    def tls_ca(self) -> Path:
        assert self.tls is not None, f"{self.name} has no TLS files"
        return self.tls.ca

    def must(self, command: str, peer: Server | None = None, **env: str) -> float:
        """Runs replication.sh `command`, which must succeed; returns the seconds it took."""
        began = time.monotonic()
        done = self.script(command, peer, **env)
        took = time.monotonic() - began
        assert done.returncode == 0, f"{self.name}: replication.sh {command}: {done.stderr}"
        return took


class Pair:
    """Makes servers in one test's directory and stops every one of them afterwards."""

    def __init__(self, root: Path, template: Path, tls: Tls):
        self.root, self.template, self.tls = root, template, tls
        self.servers: list[Server] = []

    def server(
        self, name: str, server_id: int, *extra: str, tls: bool = True, files: Tls | None = None
    ) -> Server:
        home = self.root / name
        home.mkdir()
        shutil.copytree(self.template, home / "data")
        server = Server(name, server_id, home, (files or self.tls) if tls else None, list(extra))
        self.servers.append(server)
        server.start()
        # What the image's entrypoint does on each home's first start: the app's database and
        # user, binlogged (docker_setup_db restores sql_log_bin before creating them), then
        # the init files, the shipped first-start.sql among them; then the replication user,
        # as `grant` sets it.
        # (Semi-sync is paused around them only to spare each start the 5 s its first commit
        # waits for a replica that is not there yet, as it does in the image.)
        server.root(
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF;"
            f"CREATE DATABASE {database.DB_NAME};"
            f"CREATE USER '{database.DB_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';"
            f"GRANT ALL ON {database.DB_NAME}.* TO '{database.DB_USER}'@'%';"
            "SET GLOBAL rpl_semi_sync_master_enabled = ON;"
        )
        server.root(database.FIRST_START_SQL.read_text())
        assert server.root("SELECT @@gtid_binlog_pos") == "", f"{name}: first start left a history"
        server.must("grant")
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def pair(tmp_path: Path, template: Path, tls: Tls) -> Iterator[Pair]:
    made = Pair(tmp_path, template, tls)
    try:
        yield made
    finally:
        made.stop()


class Writer(threading.Thread):
    """The app: commits one row at a time on one connection and counts the commits that
    returned. A commit that never returns (its server died while it waited) is not counted."""

    def __init__(self, server: Server, start_id: int = 1):
        super().__init__(daemon=True)
        self.server = server
        self.next_id = start_id
        self.acknowledged: list[int] = []
        self.stopping = threading.Event()
        self.client = subprocess.Popen(
            [
                binary("mariadb"),
                "--no-defaults",
                "-h127.0.0.1",
                f"-P{server.port}",
                f"-u{database.DB_USER}",
                f"-p{APP_PASSWORD}",
                database.DB_NAME,
                "-N",
                "-B",
                "--unbuffered",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def run(self) -> None:
        assert self.client.stdin and self.client.stdout
        while not self.stopping.is_set():
            row = self.next_id
            try:
                # autocommit: the SELECT's answer comes only after the INSERT's commit returned.
                self.client.stdin.write(
                    f"INSERT INTO ledger (id, payload) VALUES ({row}, 'order {row}'); "
                    f"SELECT {row};\n"
                )
                self.client.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            answer = self.client.stdout.readline()
            if answer.strip() != str(row):
                return  # the connection is gone: this commit was not acknowledged
            self.acknowledged.append(row)
            self.next_id += 1

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"the writer acknowledged only {count} rows"
            assert self.is_alive(), "the writer's connection ended"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stopping.set()
        if self.client.stdin:
            with contextlib.suppress(BrokenPipeError):
                self.client.stdin.close()
        self.join(timeout=30)
        self.client.kill()
        self.client.wait()


def wait_until(what: str, check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.1)


def make_primary(pair: Pair, *extra: str) -> Server:
    """The first primary: started read-only as every server is, made writable by the
    one-step promotion the first `up` runs, with the app's table and a catalogue to copy."""
    primary = pair.server("primary", 1, *extra)
    primary.must("promote")
    # Unlogged: the seed copies the schema, and the test is spared the one wait (the timeout)
    # of a first commit with no replica connected yet.
    primary.root(
        f"SET SESSION sql_log_bin = 0; USE {database.DB_NAME};"
        "CREATE TABLE ledger (id INT PRIMARY KEY, payload VARCHAR(64)) ENGINE=InnoDB;"
        "CREATE TABLE catalogue (id INT PRIMARY KEY, body VARCHAR(1000)) ENGINE=InnoDB;"
    )
    return primary


def follow(replica: Server, primary: Server) -> None:
    replica.must("seed", primary)
    replica.must("replicate", primary)
    wait_until(
        "the replica connects", lambda: primary.status("Rpl_semi_sync_master_clients") == "1"
    )
    # Semi-sync is back on once the replica acknowledges a commit at the primary's position.
    marker = primary.app("INSERT INTO ledger VALUES (0, 'the replica follows');")
    assert marker.returncode == 0, marker.stderr
    wait_until(
        "semi-sync on at the primary",
        lambda: primary.status("Rpl_semi_sync_master_status") == "ON",
    )


def lose_primary_while_replica_stalls(primary: Server, replica: Server, writer: Writer) -> int:
    """Stalls the replica's IO thread, lets the app keep writing, then SIGKILLs the primary;
    returns how many commits were acknowledged during the stall."""
    writer.wait_for(len(writer.acknowledged) + 50)
    replica.root("STOP SLAVE IO_THREAD;")
    before = len(writer.acknowledged)
    # Well below the 5 s timeout: semi-sync still holds every commit that waits.
    time.sleep(1.5)
    during = len(writer.acknowledged) - before
    primary.kill()
    writer.finish()
    return during


def test_every_acknowledged_commit_survives_losing_the_primary(pair):
    primary = make_primary(pair)
    fill = primary.app(
        f"INSERT INTO catalogue SELECT seq, REPEAT('b', 1000) FROM seq_1_to_{SEED_ROWS};"
    )
    assert fill.returncode == 0, fill.stderr
    size = int(primary.root(f"SELECT SUM(LENGTH(body)) FROM {database.DB_NAME}.catalogue"))
    replica = pair.server("replica", 2)
    writer = Writer(primary)
    writer.start()
    writer.wait_for(20)
    during_seed = len(writer.acknowledged)
    seeding = replica.must("seed", primary)
    replica.must("replicate", primary)
    wait_until(
        "semi-sync on at the primary",
        lambda: primary.status("Rpl_semi_sync_master_status") == "ON",
    )
    FIGURES["seed MB"] = size / 1e6
    FIGURES["seed seconds"] = seeding
    FIGURES["seed seconds per GB"] = seeding / (size / 1e9)
    assert writer.is_alive() and len(writer.acknowledged) > during_seed, (
        "the primary must keep taking the app's writes while the replica is seeded"
    )
    assert replica.root(f"SELECT COUNT(*) FROM {database.DB_NAME}.catalogue") == str(SEED_ROWS)

    FIGURES["acknowledged during the stall"] = lose_primary_while_replica_stalls(
        primary, replica, writer
    )
    acknowledged = set(writer.acknowledged)
    # Between the loss and the promotion the replica answers reads and refuses the app's writes.
    read = replica.app("SELECT COUNT(*) FROM ledger;")
    assert read.returncode == 0, f"the replica must serve reads before promotion: {read.stderr}"
    early = replica.app(f"INSERT INTO ledger VALUES ({writer.next_id + 10**6}, 'too early');")
    assert early.returncode != 0 and "read-only" in early.stderr, (
        "before its promotion the replica must refuse the app's writes"
    )
    promotion = replica.must("promote")
    found = replica.ids()
    FIGURES["rows acknowledged"] = len(acknowledged)
    FIGURES["acknowledged rows on the new primary"] = len(acknowledged & found)
    FIGURES["promotion seconds"] = promotion
    print(f"\nsemi-sync failover: {FIGURES}")
    missing = sorted(acknowledged - found)
    assert not missing, f"acknowledged rows missing on the promoted replica: {missing[:20]}"
    assert replica.root("SELECT @@read_only") == "0", "the promoted replica must be writable"

    # The former primary comes back, with its old data and its old (stale) idea of its role.
    primary.start()
    assert primary.root("SELECT @@read_only") == "1", "a returning primary must start read-only"
    refused = primary.app(
        "INSERT INTO ledger (id, payload) VALUES (1000000, 'a write to the old primary');"
    )
    assert refused.returncode != 0 and "read-only" in refused.stderr, (
        f"the former primary must refuse the app's write: {refused.stdout}{refused.stderr}"
    )
    held = primary.script("hold", HOLD_SECONDS="3")
    assert held.returncode == replication.FENCED_EXIT, (
        f"hold on a former primary nobody follows must give up fenced: {held.stderr}"
    )
    assert primary.root("SELECT @@read_only") == "1", "and it stays read-only"
    # The commit that waited for the stalled replica was prepared, never committed: the
    # restart as a replica (init_rpl_role) truncated it from the binlog and rolled it back.
    unacknowledged = writer.next_id
    assert unacknowledged not in primary.ids() | found, (
        f"row {unacknowledged} was never acknowledged and must be on neither server"
    )
    assert primary.ids() <= found, "the former primary must hold nothing the new one lacks"
    assert "Successfully truncated binlog file" in primary.log.read_text(), (
        "the former primary's restart must truncate its unacknowledged binlog tail"
    )

    primary.must("rejoin", replica)
    wait_until(
        "the new primary sees its replica",
        lambda: replica.status("Rpl_semi_sync_master_clients") == "1",
    )
    after = Writer(replica, start_id=unacknowledged + 1)
    after.start()
    after.wait_for(30)
    after.finish()
    position = replica.root("SELECT @@gtid_binlog_pos")
    assert primary.root(f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0"
    assert primary.ids() == replica.ids(), "after the rejoin both servers hold the same rows"
    assert len(primary.ids()) == len(acknowledged) + len(after.acknowledged)


def test_control_without_semi_sync_the_same_failover_loses_commits(pair):
    """Control: the check above fails when commits do not wait for the replica. Then the
    former primary holds commits the new one lacks: rejoin refuses and a re-clone is needed."""
    primary = make_primary(pair)
    primary.root("SET GLOBAL rpl_semi_sync_master_enabled = OFF;")
    replica = pair.server("replica", 2)
    replica.must("seed", primary)
    replica.must("replicate", primary)
    writer = Writer(primary)
    writer.start()
    FIGURES["control: acknowledged during the stall"] = lose_primary_while_replica_stalls(
        primary, replica, writer
    )
    acknowledged = set(writer.acknowledged)
    replica.must("promote")
    lost = acknowledged - replica.ids()
    FIGURES["control: rows acknowledged"] = len(acknowledged)
    FIGURES["control: acknowledged rows lost without semi-sync"] = len(lost)
    assert lost, "without semi-sync the stalled replica must lack acknowledged commits"

    primary.start()
    assert primary.root("SELECT @@read_only") == "1"
    rejoined = primary.script("rejoin", replica)
    assert rejoined.returncode == replication.DIVERGED_EXIT, (
        f"rejoin must refuse a former primary that diverged: {rejoined.stderr}"
    )
    assert primary.root("SELECT @@read_only") == "1", "a refused rejoin leaves it fenced"
    reclone = primary.must("reclone", replica)
    FIGURES["control: re-clone seconds"] = reclone
    print(f"\ncontrol: {FIGURES}")
    position = replica.root("SELECT @@gtid_binlog_pos")
    assert primary.root(f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0"
    assert primary.ids() == replica.ids(), "after the re-clone both servers hold the same rows"


def test_a_stall_past_the_timeout_falls_back_to_async_and_shows_in_the_status(pair):
    """What the alert reads: Rpl_semi_sync_master_status turns OFF after the timeout, commits
    unacknowledged are counted, and semi-sync returns by itself once the replica catches up."""
    primary = make_primary(pair, "--rpl-semi-sync-master-timeout=300")
    replica = pair.server("replica", 2)
    follow(replica, primary)
    replica.root("STOP SLAVE IO_THREAD;")
    began = time.monotonic()
    wrote = primary.app("INSERT INTO ledger VALUES (1, 'past the timeout');")
    waited = time.monotonic() - began
    assert wrote.returncode == 0, wrote.stderr
    assert waited >= 0.3, f"the commit must wait the timeout for the replica, waited {waited}"
    assert primary.status("Rpl_semi_sync_master_status") == "OFF"
    assert int(primary.status("Rpl_semi_sync_master_no_tx")) >= 1
    replica.root("START SLAVE IO_THREAD;")
    wait_until("semi-sync back on", lambda: primary.status("Rpl_semi_sync_master_status") == "ON")


def replication_login(server: Server, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            binary("mariadb"),
            "--no-defaults",
            "--ssl",
            f"--ssl-ca={server.tls_ca()}",
            "--ssl-verify-server-cert",
            "-h127.0.0.1",
            f"-P{server.port}",
            f"-u{replication.REPLICATION_USER}",
            f"-p{password}",
            "-e",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
    )


def test_a_restarted_primary_is_writable_again_once_its_replica_follows(pair):
    primary = make_primary(pair)
    replica = pair.server("replica", 2)
    follow(replica, primary)
    primary.stop()
    restarted = time.monotonic()
    primary.start()
    assert primary.root("SELECT @@read_only") == "1", "every start is read-only"
    assert replica.script("hold", HOLD_SECONDS="1").returncode == replication.FENCED_EXIT, (
        "hold on a server that replicates from another must refuse to make it writable"
    )
    assert replica.root("SELECT @@read_only") == "1", "the replica stays read-only"
    # The replica's IO thread reconnects by itself (MASTER_CONNECT_RETRY); hold waits for it.
    primary.must("hold", HOLD_SECONDS="30")
    FIGURES["restart to writable, seconds"] = time.monotonic() - restarted
    print(f"\nrestart: {FIGURES}")
    wrote = primary.app("INSERT INTO ledger VALUES (2, 'after the restart');")
    assert wrote.returncode == 0, f"the primary must take writes once held: {wrote.stderr}"
    position = primary.root("SELECT @@gtid_binlog_pos")
    assert replica.root(f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0"
    assert 2 in replica.ids()


def test_the_replication_user_needs_tls_and_its_password_rotates(pair):
    primary = make_primary(pair)
    replica = pair.server("replica", 2)
    follow(replica, primary)
    plain = subprocess.run(
        [
            binary("mariadb"),
            "--no-defaults",
            "--skip-ssl",
            "-h127.0.0.1",
            f"-P{primary.port}",
            f"-u{replication.REPLICATION_USER}",
            f"-p{primary.replication_password}",
            "-e",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
    )
    assert plain.returncode != 0 and "Access denied" in plain.stderr, (
        f"the replication user must not log in without TLS: {plain.stdout}{plain.stderr}"
    )
    with_tls = replication_login(primary, primary.replication_password)
    assert with_tls.returncode == 0, f"control: with TLS it logs in: {with_tls.stderr}"
    old = primary.replication_password
    for server in (primary, replica):
        server.replication_password = "replicationTestRotated2"
        server.must("grant")
    replica.must("replicate", primary)
    assert replication_login(primary, old).returncode != 0, "the old password must be refused"
    wrote = primary.app("INSERT INTO ledger VALUES (3, 'after the rotation');")
    assert wrote.returncode == 0, wrote.stderr
    position = primary.root("SELECT @@gtid_binlog_pos")
    assert replica.root(f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0"
    assert 3 in replica.ids(), "replication goes on with the new password"


def test_the_replica_refuses_a_primary_without_tls_or_with_a_stranger_certificate(
    pair, impostor_tls
):
    plain = pair.server("plain-primary", 1, tls=False)
    plain.must("promote")
    plain.root(f"SET SESSION sql_log_bin = 0; CREATE TABLE {database.DB_NAME}.ledger (id INT);")
    replica = pair.server("replica", 2)
    seeded = replica.script("seed", plain, TLS_CA=str(replica.tls_ca()))
    assert seeded.returncode != 0, "the seed must not copy data over plain TCP"
    followed = replica.script("replicate", plain, TLS_CA=str(replica.tls_ca()))
    assert followed.returncode != 0, "the replica must not replicate over plain TCP"
    assert "2026" in followed.stderr, f"the refusal must be TLS's: {followed.stderr}"
    impostor = pair.server("impostor", 3, files=impostor_tls)
    impostor.must("promote")
    impostor.root(f"SET SESSION sql_log_bin = 0; CREATE TABLE {database.DB_NAME}.ledger (id INT);")
    fooled = replica.script("replicate", impostor, TLS_CA=str(replica.tls_ca()))
    assert fooled.returncode != 0, (
        "the replica must not follow a server the fleet's CA did not sign"
    )
    assert "2026" in fooled.stderr, f"the refusal must be TLS's: {fooled.stderr}"
    assert (
        replica.root("SELECT COUNT(*) FROM information_schema.TABLES WHERE table_name = 'ledger'")
        == "0"
    ), "nothing came over"


def test_promotion_refuses_a_replica_whose_relay_log_is_not_applied(pair):
    primary = make_primary(pair)
    replica = pair.server("replica", 2)
    follow(replica, primary)
    # A row only the replica has (unlogged): the primary's row of the same id stops its SQL
    # thread, so the relay log holds a commit the replica cannot apply.
    replica.root(
        f"SET SESSION sql_log_bin = 0; INSERT INTO {database.DB_NAME}.ledger VALUES (7, 'x');"
    )
    assert primary.app("INSERT INTO ledger VALUES (7, 'from the primary');").returncode == 0
    primary.kill()
    refused = replica.script("promote", WAIT_SECONDS="2")
    assert refused.returncode != 0, "promotion must refuse a relay log it cannot apply"
    assert "not applied" in refused.stderr, refused.stderr
    assert replica.root("SELECT @@read_only") == "1", "and leave the replica read-only"


def test_usage_errors_exit_2():
    for args in ([], ["demote"]):
        done = subprocess.run(
            ["bash", str(replication.SCRIPT), *args], capture_output=True, text=True, env={}
        )
        assert done.returncode == 2 and "usage:" in done.stderr, (args, done.stderr)


def test_the_shipped_options_are_the_documented_ones():
    assert replication.server_option("rpl_semi_sync_master_wait_point") == "AFTER_SYNC"
    assert replication.server_option("rpl_semi_sync_master_timeout") == str(
        replication.SEMI_SYNC_TIMEOUT_MS
    )
    for option in ("read_only", "gtid_strict_mode", "rpl_semi_sync_master_enabled"):
        assert replication.server_option(option) == "ON", f"replication.cnf must set {option}"
    assert replication.server_option("init_rpl_role") == "SLAVE"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_script_passes_shellcheck():
    done = subprocess.run(
        ["shellcheck", "--shell=bash", str(replication.SCRIPT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_async_alert_fires_on_a_primary_only(tmp_path):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(replication.alert_rules(for_="1m")))
    primary = 'instance="primary:9104"'
    replica = 'instance="replica:9104"'
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{replication.ASYNC_METRIC}{{{primary}}}", "values": "1 1 0 0 0"},
                    {"series": f"mysql_global_variables_read_only{{{primary}}}", "values": "0x4"},
                    {"series": f"{replication.ASYNC_METRIC}{{{replica}}}", "values": "0x4"},
                    {"series": f"mysql_global_variables_read_only{{{replica}}}", "values": "1x4"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "DatabaseReplicationAsync", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "DatabaseReplicationAsync",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "instance": "primary:9104"},
                                "exp_annotations": replication.alert_rules()["groups"][0]["rules"][
                                    0
                                ]["annotations"],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    checked = subprocess.run(
        ["promtool", "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


# --- serve: the role a home's sidecar takes at each start of its server ---------------------


class Serving:
    """`replication.sh serve ROLE` running beside a server, as the pod's sidecar runs it."""

    def __init__(self, server: Server, role: str, peer: Server):
        password = server.home / "replication-password"
        password.write_text(server.replication_password)
        self.log = server.home / f"serve-{role}.log"
        environment = {
            "PATH": os.environ["PATH"],
            "LOCAL_DEFAULTS": str(server.defaults),
            "REPLICATION_USER": replication.REPLICATION_USER,
            "REPLICATION_PASSWORD_FILE": str(password),
            "DATABASES": database.DB_NAME,
            "PEER_HOST": "127.0.0.1",
            "PEER_PORT": str(peer.port),
            "TLS_CA": str(server.tls_ca()),
            "WAIT_SECONDS": "30",
            "RETRY_SECONDS": "1",
            "WATCH_SECONDS": "1",
        }
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                ["bash", str(replication.SCRIPT), "serve", role],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def said(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def serving() -> Iterator[list[Serving]]:
    started: list[Serving] = []
    try:
        yield started
    finally:
        for one in started:
            if one.proc.poll() is None:
                one.stop()


def until(what: str, check, serving: list[Serving], timeout: float = 60) -> None:
    """wait_until, and what every `serve` said when it times out."""
    try:
        wait_until(what, check, timeout=timeout)
    except AssertionError as failed:
        said = "\n".join(f"--- {one.log}:\n{one.said()[-2000:]}" for one in serving)
        raise AssertionError(f"{failed}\n{said}") from None


def writable(server: Server) -> bool:
    return server.root("SELECT @@read_only") == "0"


def follows(replica: Server, primary: Server) -> bool:
    # Vertical, with the field names (root() leaves them out).
    status = subprocess.run(
        [
            binary("mariadb"),
            f"--defaults-extra-file={replica.defaults}",
            "-e",
            "SHOW SLAVE STATUS\\G",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return (
        f"Master_Port: {primary.port}" in status
        and "Slave_IO_Running: Yes" in status
        and "Slave_SQL_Running: Yes" in status
    )


def caught_up(replica: Server, primary: Server) -> None:
    position = primary.root("SELECT @@gtid_binlog_pos")
    assert replica.root(f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0", (
        f"{replica.name} must apply {primary.name}'s commits up to {position}"
    )


def restart(server: Server) -> None:
    server.stop()
    server.start()


def test_serve_takes_each_role_at_every_start_and_moves_the_primary_both_ways(pair, serving):
    """The roles the graph gives the homes (database.primary: main, then standby, then main
    again), through `serve` only: seed and hold on a first start, hold again after a restart,
    a planned promotion of the second home with the main home rejoining, promote again when
    the promoted server restarts, and the way back."""
    main = pair.server("main", 1)
    second = pair.server("second", 2)
    # primary: main. The replica's home is updated first (its StatefulSet comes first).
    serving.append(Serving(second, "replica", main))
    serving.append(Serving(main, "primary", second))
    until("the second home follows main", lambda: follows(second, main), serving)
    until("main holds and turns writable", lambda: writable(main), serving)
    assert not writable(second), "the replica stays read-only"
    made = main.app("CREATE TABLE ledger (id INT PRIMARY KEY, payload VARCHAR(64));")
    assert made.returncode == 0, made.stderr
    assert main.app("INSERT INTO ledger VALUES (1, 'on main');").returncode == 0
    caught_up(second, main)
    assert second.ids() == {1}

    restart(main)
    until("main, restarted, holds again", lambda: writable(main), serving)
    assert "the server restarted" in serving[1].said(), serving[1].said()
    assert main.app("INSERT INTO ledger VALUES (2, 'after a restart');").returncode == 0

    # primary: standby. Pods restart with their new role, the replica's home first.
    for one in serving:
        one.stop()
    restart(main)
    serving.append(Serving(main, "replica", second))
    restart(second)
    serving.append(Serving(second, "promoted", main))
    until("the second home is promoted", lambda: writable(second), serving)
    until("main rejoins as its replica", lambda: follows(main, second), serving)
    assert not writable(main), "the former primary is fenced: read-only"
    refused = main.app("INSERT INTO ledger VALUES (99, 'on the former primary');")
    assert refused.returncode != 0 and "read-only" in refused.stderr, refused.stderr
    assert second.app("INSERT INTO ledger VALUES (3, 'on the second home');").returncode == 0
    caught_up(main, second)

    restart(second)
    until("the promoted server is writable again", lambda: writable(second), serving)
    assert "replication serve" in serving[-1].said()
    assert second.app("INSERT INTO ledger VALUES (4, 'after its restart');").returncode == 0
    until("main follows again", lambda: follows(main, second), serving)

    # primary: main again: the same one step, the other way.
    for one in serving[-2:]:
        one.stop()
    restart(second)
    serving.append(Serving(second, "replica", main))
    restart(main)
    serving.append(Serving(main, "primary", second))
    until("main is primary again", lambda: writable(main), serving)
    until("the second home rejoins main", lambda: follows(second, main), serving)
    assert not writable(second)
    assert main.app("INSERT INTO ledger VALUES (5, 'back on main');").returncode == 0
    caught_up(second, main)
    assert main.ids() == second.ids() == {1, 2, 3, 4, 5}


def test_serve_says_a_diverged_former_primary_needs_a_reclone_and_stays_fenced(pair, serving):
    main = pair.server("main", 1)
    main.must("promote")
    main.root(
        f"SET SESSION sql_log_bin = 0; CREATE TABLE {database.DB_NAME}.ledger "
        "(id INT PRIMARY KEY, payload VARCHAR(64));"
    )
    second = pair.server("second", 2)
    follow(second, main)
    # A commit only main has: semi-sync off, the replica not receiving (an async stretch).
    second.root("STOP SLAVE IO_THREAD;")
    main.root("SET GLOBAL rpl_semi_sync_master_enabled = OFF;")
    assert main.app("INSERT INTO ledger VALUES (8, 'only on main');").returncode == 0
    # A clean stop keeps that commit (a SIGKILL this soon after it may truncate it at restart,
    # init_rpl_role): the former primary holds a commit the new one lacks.
    main.stop()
    second.must("promote")
    main.start()
    serving.append(Serving(main, "replica", second))
    until(
        "serve says a re-clone is needed",
        lambda: "must be re-cloned" in serving[0].said(),
        serving,
    )
    assert "replication.sh reclone" in serving[0].said()
    assert not writable(main), "a diverged former primary stays read-only"
    assert serving[0].proc.poll() is None, "serve keeps watching; it never re-clones by itself"


def test_the_jobs_guard_tells_the_primary_from_the_replica(pair, tmp_path):
    """The first step of each home's schema Job (database.WAIT_FOR_ROLE, as the app user over
    TCP) and of a rotation (database.home_guard, as root): `primary` on a writable server,
    `replica` on one whose replication threads run, and a wait on a fenced one."""
    primary = make_primary(pair)
    replica = pair.server("replica", 2)
    follow(replica, primary)
    password = tmp_path / "DB_PASSWORD"
    password.write_text(APP_PASSWORD)

    def schema_guard(server: Server, timeout: float = 20) -> str:
        role_file = tmp_path / f"role-{server.name}"
        subprocess.run(
            ["sh", "-c", database.WAIT_FOR_ROLE],
            env={
                "PATH": os.environ["PATH"],
                "DB_HOST": "127.0.0.1",
                "DB_PORT": str(server.port),
                "DB_USER": database.DB_USER,
                "DB_PASSWORD_FILE": str(password),
                "HOME_ROLE_FILE": str(role_file),
            },
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return role_file.read_text()

    assert schema_guard(primary) == "primary"
    assert schema_guard(replica) == "replica"
    as_root = subprocess.run(
        ["sh", "-c", database.home_guard(f"--defaults-extra-file={replica.defaults}", "rotation")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert as_root.stdout.strip() == "replica", as_root.stderr
    # Fenced: read-only and following no one. The guard waits rather than guess.
    replica.root("STOP SLAVE;")
    with pytest.raises(subprocess.TimeoutExpired):
        schema_guard(replica, timeout=7)

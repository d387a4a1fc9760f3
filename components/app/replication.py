"""Losing the main cluster: the bookstore's data on a second home, and how it changes hands.

The design, and why:

**The second home is a declared standby main cluster** (``ocm-fleet:hub.standby: {cloud,
region}``), not one of the app clusters. App clusters are capacity: the config adds and
retires them, and retiring the one that held the replica would take the data's only other copy
with it. The second public entry and the standby hub are main-cluster roles too, so the home
they will share is a main cluster of its own. It must be on the other cloud than the main
cluster, since it exists to survive that cloud's loss. (The standby hub must sign CSRs to
register agents, which EKS cannot: that constraint falls on the standby hub, not on the data.)

**Replication** (``replication.cnf``, the same file on every server): GTID with
``gtid_strict_mode``, semi-synchronous with the wait point ``AFTER_SYNC``: a commit is written
and synced to the binlog, then waits for the replica's acknowledgement, and only then commits
in the engine, so no session reads, and no client is told of, a commit the replica lacks. The
replica connects with ``MASTER_SSL=1`` and ``MASTER_SSL_VERIFY_SERVER_CERT=1`` against the CA
of the graph, and the replication user is ``REQUIRE SSL``: neither side replicates in plain
text. Seeding is ``mariadb-dump --single-transaction --gtid --master-data=1``: one InnoDB
snapshot, at the position MariaDB reports for that snapshot (``Binlog_snapshot_file``), so the
primary takes writes throughout; the dump ends with ``SET GLOBAL gtid_slave_pos``.

**The semi-sync timeout is 5 s** (SEMI_SYNC_TIMEOUT_MS). While the replica is down or
unreachable, each commit waits up to the timeout; the first one that times out switches the
primary to asynchronous replication, and commits then return at once until the replica has
caught up again, when semi-sync turns itself back on. A longer timeout rides out a longer
network blip with the guarantee intact, but a user's write then hangs that long; 5 s stays
well inside the public entry's 30 s server timeout (components/edge/_haproxy.py), so a write
during a replica outage is slow once, never failed, and a cross-cloud blip of a few seconds
keeps the guarantee. While the primary runs asynchronously the no-loss guarantee does not
hold: a promotion then loses what the replica had not received. The user sees that state as
the metric ``mysql_global_status_rpl_semi_sync_master_status`` at 0 (mysqld-exporter reads
``Rpl_semi_sync_master_status`` and maps ON/OFF to 1/0: prometheus/mysqld_exporter
``collector/collector.go`` (parseStatus)), and the alert ``DatabaseReplicationAsync`` (alert_rules).

**Promotion** (``replication.sh promote``) stops the IO thread, waits with
``MASTER_GTID_WAIT`` until the relay log is applied up to ``Gtid_IO_Pos``, then
``STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF``. It refuses, and leaves the
replica read-only, if the relay log cannot be applied.

**Fencing.** Every server starts ``read_only = ON`` (replication.cnf). Only two steps make one
writable: ``promote``, the operator's decision; and ``hold``, which a primary runs at each
start and which turns it writable only once the replica of the other home follows it
(``Rpl_semi_sync_master_clients`` >= 1; the replica retries its connection every 2 s,
``MASTER_CONNECT_RETRY``, so a restarted primary is writable about 2 s after it starts). A
replica runs with semi-sync's master side off, since its replayed commits wait for no one, and
``promote`` turns it on. A former primary that returns after a promotion has
no replica (its successor ran ``RESET SLAVE ALL`` and follows no one), so it stays read-only
whatever its own home's stale configuration says, and the app's writes are refused. The cost,
stated: a primary that restarts while the other home is down stays read-only until that home
returns or the operator promotes it again.

**Rejoin.** Every server starts with ``init_rpl_role = SLAVE``: crash recovery then truncates
a binlog tail of transactions that were prepared but never committed in the engine, instead of
committing them (MDEV-21117, "semisync slave recovery"; present in 10.11 and 11.4 alike).
With ``AFTER_SYNC`` those are exactly the commits that waited for an acknowledgement when the
primary died, so the truncated former primary holds nothing its successor lacks and
``replication.sh rejoin`` follows the new primary from its own ``gtid_binlog_pos``. Truncation
cannot help when the former primary committed without the replica (an asynchronous stretch
after the timeout, or semi-sync off): the new primary's binlog then lacks a GTID the former
one holds, replication stops with error 1236 under ``gtid_strict_mode``, ``rejoin`` exits 4,
and ``replication.sh reclone`` drops its data and binlog and seeds it again.
The same recovery runs when a primary crashes and restarts without any promotion. A commit the
replica acknowledged in the instant before the engine committed it is then cut on the primary,
and the replica holds one commit more than its primary: not a lost write (its client never had
an answer), but the replica is then the one to promote. This case is reasoned, not tested.

**Roles in the graph** (components/app/database.py, ``home_roles``). With ``hub.standby`` both
homes run the same MariaDB StatefulSet with this file's options, a ``server_id`` of their own
(main 1, second home 2), a server certificate from one CA of the graph naming the home's
database load balancer address, and a sidecar running ``replication.sh serve ROLE``. The
sidecar takes the role's steps whenever its server starts (it watches the server's start time,
since the server's container restarts alone), and only the role comes from the config:

- ``database.primary: main``: the main home serves ``primary`` (``grant``, then ``hold``; or
  ``promote`` if it still follows the second home, which is how the primary moves back) and the
  second home ``replica``.
- ``database.primary: standby``: the second home serves ``promoted`` (``grant``, ``promote``,
  at every start: this is the operator's decision, taken while the main home may be gone, and a
  promoted primary that restarted must not wait for a replica that may never return) and the
  main home ``replica``.
- ``replica`` decides from the server itself: one that follows keeps its position
  (``replicate``); one with an empty binlog is seeded first (``seed``); one with a history and no
  replication was a primary and ``rejoin``s, or, on exit 4, says in its log that
  ``replication.sh reclone`` is needed and stays read-only. The sidecar never re-clones.

The fencing asymmetry is deliberate: a main home that returns after a promotion made while it
was unreachable still has ``primary`` in its stale StatefulSet, and ``hold`` keeps it read-only
because no replica follows it. A second home that was primary and returns after the primary
was moved back while it was unreachable runs ``promote`` from its stale StatefulSet and is
writable, but the app clusters point at the main home by then, so it takes no app writes; the
next ``pulumi up`` that reaches it makes it a replica (``rejoin``, or a re-clone if it took any).

Order: the replica home's StatefulSet comes first and the primary's depends on it, so a change
of primary restarts the home giving it up (read-only from its start) before the other is
promoted, and the two are never writable at once. Each home's ``mariadb-public`` load balancer
is made before its StatefulSet (its address is in the certificate) and admits the app
clusters' egress and the other home's. The schema and rotation Jobs are on both homes, with
the same inputs whichever home is primary, after both StatefulSets: each first waits for its
server to be either writable (the primary: it goes on) or replicating (a replica: it stops,
done; root could write on a read-only server and split the histories). So a promotion
creates, deletes and re-runs no Job, which an unreachable main cluster could not take, and
only the primary's Jobs write (database.py, ``home_guard``).

**10.11 and 11.4.** The tests run Debian's 10.11; the program's image is 11.4. What differs
and matters: 11.4 clients and replicas verify the server certificate by default, and an 11.4
server generates a self-signed certificate when none is configured; replication.sh sets
``MASTER_SSL_VERIFY_SERVER_CERT=1`` and ``--ssl-verify-server-cert`` explicitly and the program
mounts its own certificates, so both versions behave the same. ``init_rpl_role``, semi-sync in
the server, ``MASTER_GTID_WAIT``, ``READ_ONLY ADMIN`` (which root holds and the app users do
not, so ``read_only`` refuses the app) and ``Binlog_snapshot_file`` are in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER_OPTIONS = Path(__file__).with_name("replication.cnf")
"""Server options for every server of a fleet with a second home (primary and replica)."""
SCRIPT = Path(__file__).with_name("replication.sh")
"""Grant, seed, replicate, promote, hold, rejoin, reclone; tests/test_db_replication.py runs
this file against two real MariaDB servers."""
REPLICATION_USER = "replicator"
SEMI_SYNC_TIMEOUT_MS = 5000
"""rpl_semi_sync_master_timeout, as replication.cnf sets it (see the module docstring)."""
ASYNC_METRIC = "mysql_global_status_rpl_semi_sync_master_status"
"""1 while commits wait for the replica, 0 once the primary fell back to asynchronous."""
UNACKNOWLEDGED_METRIC = "mysql_global_status_rpl_semi_sync_master_no_tx"
"""Commits the replica did not acknowledge (a counter)."""
DIVERGED_EXIT = 4
"""`replication.sh rejoin` exits with this when the former primary must be re-cloned."""
FENCED_EXIT = 3
"""`replication.sh hold` exits with this when no replica followed: the server stays read-only."""


def server_option(name: str) -> str:
    """The value replication.cnf gives option `name` (as written, `-` or `_`)."""
    wanted = name.replace("-", "_")
    for line in SERVER_OPTIONS.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().replace("-", "_") == wanted:
            return value.strip()
    raise KeyError(f"{SERVER_OPTIONS.name} does not set {name}")


def alert_rules(for_: str = "1m") -> dict[str, Any]:
    """The rule group that shows the primary running without the no-loss guarantee.

    `DatabaseReplicationAsync` fires while the primary's semi-sync status is off: commits are
    acknowledged without the replica, and a promotion would lose them. `for_` lets a short
    replica restart pass unannounced; tests shorten it.
    """
    return {
        "groups": [
            {
                "name": "ocm-fleet-database",
                "rules": [
                    {
                        "alert": "DatabaseReplicationAsync",
                        # Only a primary (read_only off) promises anything: a replica's own
                        # master status is off by design.
                        "expr": f"{ASYNC_METRIC} == 0 and on (instance) "
                        "mysql_global_variables_read_only == 0",
                        "for": for_,
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "The database primary replicates asynchronously",
                            "description": "The replica has not acknowledged commits for "
                            "longer than rpl_semi_sync_master_timeout: writes are not on the "
                            "second home, and a promotion now would lose them.",
                        },
                    },
                ],
            }
        ]
    }

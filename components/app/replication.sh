#!/bin/bash
# Replication between the fleet's two database homes, one step per command. Every server runs
# with replication.cnf: GTID, semi-synchronous with the wait point AFTER_SYNC, read-only at start.
#
#   grant      on each server: the replication user, TLS required, not written to the binlog
#   seed       on an empty replica: a consistent copy of the primary and its GTID position
#   replicate  on a replica: follow the primary, over verified TLS, from its GTID position
#   promote    on the replica: apply the relay log it holds, stop replicating, turn writable
#   hold       on a primary that (re)starts: writable only once its replica follows it
#   rejoin     on a former primary: follow the new primary; exit 4 when its history diverged
#   reclone    on a former primary that diverged: drop its data and binlog, seed, replicate
#   serve ROLE for the life of a pod, beside its server: the steps of ROLE (primary, promoted
#              or replica) at each start of the server; never reclone (it drops data)
#
# Exit status: 0 done; 1 a failure (nothing was decided); 2 usage; 3 `hold` gave up, still
# read-only (fenced); 4 `rejoin` found a history the new primary lacks: run `reclone`.
#
# Environment:
#   LOCAL_DEFAULTS             client option file logging in to the local server as root
#   PEER_HOST, PEER_PORT       the primary (seed, replicate, rejoin, reclone)
#   TLS_CA                     CA file that signed the primary's server certificate
#   REPLICATION_USER           the replication user's name
#   REPLICATION_PASSWORD_FILE  its password (letters and digits), kept off command lines
#   DATABASES                  the databases a seed copies (space-separated), e.g. bookstore
#   WAIT_SECONDS               how long promote and rejoin wait for the server (default 60)
#   HOLD_SECONDS               how long hold waits for its replica; 0 waits forever (default 0)
#   RETRY_SECONDS              serve: pause before a failed step is tried again (default 10)
#   WATCH_SECONDS              serve: how often it checks whether the server restarted (default 5)
set -euo pipefail

DIVERGED=4

command=${1:-}
WAIT_SECONDS=${WAIT_SECONDS:-60}
HOLD_SECONDS=${HOLD_SECONDS:-0}
RETRY_SECONDS=${RETRY_SECONDS:-10}
WATCH_SECONDS=${WATCH_SECONDS:-5}

say() { echo "replication $command: $*" >&2; }
fail() {
  say "$1"
  exit "${2:-1}"
}

local_sql() {
  mariadb --defaults-extra-file="$LOCAL_DEFAULTS" --batch --skip-column-names "$@"
}

password() {
  : "${REPLICATION_PASSWORD_FILE:?}"
  local value
  value=$(cat "$REPLICATION_PASSWORD_FILE")
  # The password goes inside SQL string literals: letters and digits only (as generated).
  case "$value" in
    "" | *[!A-Za-z0-9]*) fail "the replication password must be letters and digits only" ;;
  esac
  printf '%s' "$value"
}

user() {
  : "${REPLICATION_USER:?}"
  case "$REPLICATION_USER" in
    "" | *[!A-Za-z0-9_]*) fail "REPLICATION_USER must be letters, digits and _ only" ;;
  esac
  printf '%s' "$REPLICATION_USER"
}

peer() {
  : "${PEER_HOST:?}" "${PEER_PORT:?}" "${TLS_CA:?}"
  case "$PEER_HOST" in *[!A-Za-z0-9.:-]*) fail "PEER_HOST '$PEER_HOST' is not a host name" ;; esac
  case "$PEER_PORT" in "" | *[!0-9]*) fail "PEER_PORT '$PEER_PORT' is not a port" ;; esac
}

# The client options that reach the primary: TLS, with its certificate checked against TLS_CA
# and its host name, so neither a plain-text path nor an impostor carries the data.
peer_tls=()
peer_options() {
  peer
  user >/dev/null
  peer_tls=(--host="$PEER_HOST" --port="$PEER_PORT" --user="$(user)"
    --ssl --ssl-ca="$TLS_CA" --ssl-verify-server-cert)
}

slave_field() {
  mariadb --defaults-extra-file="$LOCAL_DEFAULTS" --execute='SHOW SLAVE STATUS\G' |
    sed -n "s/^ *$1: //p"
}

semi_sync_clients() {
  local_sql --execute="SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'" | cut -f2
}

grant() {
  local name secret
  name=$(user)
  secret=$(password)
  # Each home grants for itself: unlogged, so no server holds a transaction the other lacks.
  local_sql <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS '$name'@'%' IDENTIFIED BY '$secret' REQUIRE SSL;
ALTER USER '$name'@'%' IDENTIFIED BY '$secret' REQUIRE SSL;
-- Replication, and what mariadb-dump needs to take a consistent copy for a seed.
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD
  ON *.* TO '$name'@'%';
SQL
  say "user $name may replicate, over TLS only"
}

change_master() {
  local secret
  secret=$(password)
  peer
  user >/dev/null
  # MASTER_SSL_VERIFY_SERVER_CERT is set although 11.4 turns it on by default, so the
  # 10.11 servers the tests run behave the same.
  local_sql <<SQL
CHANGE MASTER TO
  MASTER_HOST = '$PEER_HOST', MASTER_PORT = $PEER_PORT,
  MASTER_USER = '$(user)', MASTER_PASSWORD = '$secret',
  MASTER_SSL = 1, MASTER_SSL_CA = '$TLS_CA', MASTER_SSL_VERIFY_SERVER_CERT = 1,
  MASTER_USE_GTID = slave_pos,
  MASTER_CONNECT_RETRY = 2;
SQL
}

wait_for_threads() {
  local waited=0 io sql error
  while [ "$waited" -lt "$WAIT_SECONDS" ]; do
    io=$(slave_field Slave_IO_Running)
    sql=$(slave_field Slave_SQL_Running)
    error=$(slave_field Last_IO_Errno)
    if [ "$io" = Yes ] && [ "$sql" = Yes ]; then
      return 0
    fi
    if [ -n "$error" ] && [ "$error" != 0 ]; then
      printf '%s' "$error"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  printf 'timeout'
  return 1
}

# A replica's own commits are the primary's, replayed: they wait for no one. Left on, each
# replayed commit would wait for a replica of the replica (wait_no_slave) until the timeout.
as_replica="SET GLOBAL read_only = ON; SET GLOBAL rpl_semi_sync_master_enabled = OFF; STOP SLAVE;"

replicate() {
  local_sql --execute="$as_replica"
  change_master
  local_sql --execute="START SLAVE;"
  local error
  if ! error=$(wait_for_threads); then
    fail "not replicating from $PEER_HOST:$PEER_PORT (error $error): $(slave_field Last_IO_Error)"
  fi
  say "replicating from $PEER_HOST:$PEER_PORT over TLS, semi-sync $(local_sql \
    --execute="SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'" | cut -f2)"
}

plain_databases() {
  : "${DATABASES:?}"
  local name
  for name in $DATABASES; do
    case "$name" in *[!A-Za-z0-9_]*) fail "database name '$name' is not a plain name" ;; esac
  done
}

seed() {
  plain_databases
  peer_options
  local secret
  secret=$(password)
  # --single-transaction reads one InnoDB snapshot while the primary keeps taking writes;
  # the dump's position is that snapshot's (Binlog_snapshot_file/position), no global lock,
  # and it ends with SET GLOBAL gtid_slave_pos. The load is not binlogged: the replica's
  # history stays the primary's. A failed dump stops here (pipefail), before any position.
  local_sql --execute="SET GLOBAL read_only = ON; STOP SLAVE; RESET SLAVE ALL;"
  # shellcheck disable=SC2086 # DATABASES is a list of names
  if ! MYSQL_PWD=$secret mariadb-dump "${peer_tls[@]}" --single-transaction --gtid \
    --master-data=1 --routines --triggers --events --databases $DATABASES |
    local_sql --init-command="SET SESSION sql_log_bin = 0"; then
    fail "the copy from $PEER_HOST:$PEER_PORT failed: nothing to replicate from"
  fi
  say "seeded $DATABASES at GTID $(local_sql --execute='SELECT @@gtid_slave_pos')"
}

promote() {
  local io_pos applied
  # The primary is gone or leaving: take no more from it, and apply all the relay log holds.
  local_sql --execute="STOP SLAVE IO_THREAD;"
  io_pos=$(slave_field Gtid_IO_Pos)
  if [ -n "$io_pos" ]; then
    applied=$(local_sql --execute="SELECT MASTER_GTID_WAIT('$io_pos', $WAIT_SECONDS)")
    if [ "$applied" != 0 ]; then
      fail "the relay log is not applied up to $io_pos within ${WAIT_SECONDS}s: $(slave_field \
        Last_SQL_Error); still read-only"
    fi
  fi
  local_sql --execute="STOP SLAVE; RESET SLAVE ALL;
    SET GLOBAL rpl_semi_sync_master_enabled = ON; SET GLOBAL read_only = OFF;"
  say "primary at GTID $(local_sql --execute='SELECT @@gtid_current_pos'), writable"
}

hold() {
  local waited=0 io clients
  # A server is only writable while the replica of the other home follows it: a former
  # primary that returns after a promotion has none (its successor replicates from no one),
  # so it stays read-only, whatever its home's configuration still says.
  while [ "$HOLD_SECONDS" = 0 ] || [ "$waited" -lt "$HOLD_SECONDS" ]; do
    # Assignments, so that a server gone away ends the wait (errexit) instead of spinning.
    io=$(slave_field Slave_IO_Running)
    if [ "$io" = Yes ]; then
      fail "this server replicates from another: it is not the primary" 3
    fi
    clients=$(semi_sync_clients)
    if [ "${clients:-0}" -ge 1 ]; then
      local_sql --execute="SET GLOBAL read_only = OFF;"
      say "a replica follows this server: writable"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
  fail "no replica followed within ${HOLD_SECONDS}s: still read-only (fenced)" 3
}

# 0 when the peer's binlog holds this server's whole history: for the last GTID of each
# domain here (@@gtid_binlog_pos, domain-server-seq), the peer's @@gtid_binlog_state has the
# same domain and server at that sequence number or later. Under gtid_strict_mode a domain's
# sequence numbers only grow, so a later one from that server means this one came before it.
# 1 when it does not (this server committed what the peer never received); 2 when the peer
# cannot be asked. Decided before replicating: a refused connection (error 1236) arrives only
# after the IO thread has shown itself running, which a check of the threads alone can miss.
peer_holds_history() {
  local mine theirs secret
  mine=$(local_sql --execute='SELECT @@gtid_binlog_pos')
  [ -n "$mine" ] || return 0
  peer_options
  secret=$(password)
  theirs=$(MYSQL_PWD=$secret mariadb "${peer_tls[@]}" --batch --skip-column-names \
    --execute='SELECT @@gtid_binlog_state') || return 2
  awk -v mine="$mine" -v theirs="$theirs" 'BEGIN {
    gsub(/[ \t\r\n]/, "", mine); gsub(/[ \t\r\n]/, "", theirs)
    n = split(theirs, held, ",")
    for (i = 1; i <= n; i++) {
      split(held[i], g, "-"); key = g[1] "-" g[2]
      if (!(key in top) || g[3] + 0 > top[key]) top[key] = g[3] + 0
    }
    m = split(mine, last, ",")
    for (i = 1; i <= m; i++) {
      split(last[i], g, "-"); key = g[1] "-" g[2]
      if (!(key in top) || top[key] < g[3] + 0) exit 1
    }
    exit 0
  }'
}

rejoin() {
  local error held=0
  local_sql --execute="$as_replica"
  peer_holds_history || held=$?
  case "$held" in
    0) ;;
    1) fail "this server's history diverged from $PEER_HOST:$PEER_PORT (it holds GTIDs $(local_sql \
      --execute='SELECT @@gtid_binlog_pos') the other lacks): run reclone" 4 ;;
    *) fail "cannot read the GTID history of $PEER_HOST:$PEER_PORT: not rejoining" ;;
  esac
  # Its own history, truncated at restart to what the replica acknowledged, is where it
  # starts following the new primary from.
  local_sql --execute="SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos;"
  change_master
  local_sql --execute="START SLAVE;"
  if ! error=$(wait_for_threads); then
    local_sql --execute="STOP SLAVE;"
    case "$error" in
      # ER_MASTER_FATAL_ERROR_READING_BINLOG: the new primary's binlog lacks a GTID this
      # server has, so it holds commits the new primary never saw (an async stretch).
      1236) fail "this server's history diverged from $PEER_HOST:$PEER_PORT: run reclone" 4 ;;
      *) fail "not replicating from $PEER_HOST:$PEER_PORT (error $error)" ;;
    esac
  fi
  say "rejoined as a replica of $PEER_HOST:$PEER_PORT at GTID $(local_sql \
    --execute='SELECT @@gtid_slave_pos')"
}

reclone() {
  plain_databases
  local name
  local_sql --execute="SET GLOBAL read_only = ON; STOP SLAVE; RESET SLAVE ALL;"
  for name in $DATABASES; do
    local_sql --execute="SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS \`$name\`;"
  done
  # The diverged commits leave with the binlog that holds them.
  local_sql --execute="RESET MASTER; SET GLOBAL gtid_slave_pos = '';"
  seed
  replicate
}

# A server that follows another: its replication configuration survives restarts (master.info).
is_replica() {
  [ -n "$(slave_field Master_Host)" ]
}

# Nothing in its binlog: it never committed a logged transaction, its own or replayed, so it
# holds nothing to keep (a fresh server, or one whose seed stopped half-way: the load is unlogged).
has_no_history() {
  [ -z "$(local_sql --execute='SELECT @@gtid_binlog_pos')" ]
}

# The steps for this server's role, decided from the role and what the server is now:
#   primary   the main home's when it holds the primary: writable once its replica follows
#             (hold); a server that still follows the other home is being promoted (promote).
#   promoted  the second home's when it holds the primary: the operator's decision, taken while
#             the main home may be gone, so it is writable at every start (promote again).
#   replica   follows the primary: a server that already follows keeps its position
#             (replicate); one without history is seeded first; one with a history and no
#             replication was a primary and rejoins, or stops with exit 4 when it must be
#             re-cloned.
role_steps() {
  grant
  case "$role" in
    primary) if is_replica; then promote; else hold; fi ;;
    promoted) promote ;;
    replica)
      if is_replica; then
        replicate
      elif has_no_history; then
        seed
        replicate
      else
        rejoin
      fi
      ;;
  esac
}

# When the server started (seconds since the epoch) and this connection's id, which grows
# through a server's life and starts again from 1 at each start: together they tell a restart
# even one within a second of the last (bounded: a client can hang on a server shutting down).
# Nothing while the server that answers is the image's temporary one: its entrypoint runs
# that server with --skip-networking on the same socket while it creates the users and runs
# first-start.sql (docker-entrypoint.sh, docker_temp_server_start), and no step may act on it.
server_started() {
  timeout 10 mariadb --defaults-extra-file="$LOCAL_DEFAULTS" --batch --skip-column-names \
    --connect-timeout=5 --execute="SELECT UNIX_TIMESTAMP() - VARIABLE_VALUE, CONNECTION_ID()
      FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'
      AND @@skip_networking = 0" 2>/dev/null
}

# True while `server_started` output $2 is the same server as $1's.
same_server() {
  local then_start then_id now_start now_id
  read -r then_start then_id <<<"$1"
  read -r now_start now_id <<<"$2"
  [ -n "$now_start" ] && [ $((now_start - then_start)) -le 1 ] &&
    [ $((then_start - now_start)) -le 1 ] && [ "$now_id" -gt "$then_id" ]
}

serve() {
  role=${1:-}
  case "$role" in
    primary | promoted | replica) ;;
    *) fail "the role must be primary, promoted or replica, not '$role'" 2 ;;
  esac
  local status started now
  while true; do
    until started=$(server_started) && [ -n "$started" ]; do sleep 1; done
    # A subshell of its own, so that a failing step ends the steps and not this loop; errexit
    # is off around it, since a subshell tested by `if` or `||` would run without it.
    set +e
    (
      set -e
      role_steps
    )
    status=$?
    set -e
    case "$status" in
      0)
        say "role $role in place"
        ;;
      "$DIVERGED")
        say "this server must be re-cloned from the primary: replication.sh reclone (it drops" \
          "this server's data and binlog); it stays read-only until then"
        ;;
      *)
        say "role $role not in place (exit $status); trying again in ${RETRY_SECONDS}s"
        sleep "$RETRY_SECONDS"
        continue
        ;;
    esac
    # The server restarts without this container: every start is read-only, so the steps run
    # again once it reports another start or a connection id lower than the last one's, or
    # stops answering.
    while now=$(server_started) && same_server "$started" "$now"; do
      started=$now
      sleep "$WATCH_SECONDS"
    done
    say "the server restarted: taking the role $role again"
  done
}

case "$command" in
  serve)
    : "${LOCAL_DEFAULTS:?}"
    serve "${2:-}"
    ;;
  grant | seed | replicate | promote | hold | rejoin | reclone)
    : "${LOCAL_DEFAULTS:?}"
    "$command"
    ;;
  *)
    echo "usage: replication.sh grant|seed|replicate|promote|hold|rejoin|reclone|serve ROLE" >&2
    exit 2
    ;;
esac

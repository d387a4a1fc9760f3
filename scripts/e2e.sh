#!/usr/bin/env bash
# Checks a running fleet end to end; the e2e workflow calls one subcommand per step.
#
#   ./scripts/e2e.sh fleet-ready      every cluster joined, every ManifestWork Available; with a
#                                     second home also its replica replicating, every entry up
#   ./scripts/e2e.sh serves           every entry serves /, /shop/ and books from /api/books
#   ./scripts/e2e.sh failover         with the first app cluster paused, the entries keep answering
#   ./scripts/e2e.sh promote-and-back database.primary to standby and one deploy, checked, then
#                                     the same back to main (a stack with hub.standby only)
#   ./scripts/e2e.sh inventory        before destroy: record the stack's kind clusters and volumes
#   ./scripts/e2e.sh no-leftovers     after destroy: none of them, nor any of its containers, left
#   ./scripts/e2e.sh collect DIR      logs and each cluster's state into DIR (on failure)
#
# Environment: STACK (default local). Needs pulumi, kubectl, kind, docker, curl and python3.
# kind clusters are named "<stack>-<cluster>" (components/clusters/kind.py).
set -euo pipefail
# A failure inside $(...) stops the script too, not only the substitution (bash 4.4 and later).
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."

STACK=${STACK:-local}
WAIT=${E2E_WAIT:-15m}
FAILOVER_REQUESTS=${E2E_FAILOVER_REQUESTS:-30}
KUBECONFIGS=${E2E_KUBECONFIGS:-${RUNNER_TEMP:-/tmp}/ocm-fleet-e2e-kubeconfigs}
# What `inventory` records and `no-leftovers` reads: outputs are gone once the stack is destroyed.
INVENTORY=${E2E_INVENTORY:-${RUNNER_TEMP:-/tmp}/ocm-fleet-e2e-$STACK.inventory}
# How long a state that follows a change (replication, a promotion, a row) may take to show.
POLL_SECONDS=${E2E_POLL_SECONDS:-600}
POLL_INTERVAL=5
# The one step a user takes to apply a change of database.primary (docs/data.md, "Promotion").
DEPLOY=${E2E_DEPLOY:-./scripts/deploy.sh}

# Names the program gives (components/app/database.py, components/app/delivery.py).
DATA_NAMESPACE=bookstore-data
APP_NAMESPACE=bookstore
DATABASE_SERVICE=bookstore-database
# The replication sidecar has the client and a root option file; the server's own container
# has neither (database.py, replicated_mariadb_spec). It reaches the server on its socket.
ROOT_CLIENT=/run/secrets/replication/root-client.cnf
MARKS=bookstore.e2e_promotion_marks
# Labels of the containers a stack runs on Docker: kind's nodes (kind, pkg/cluster/internal/
# providers/docker/provider.go, ListNodes) and cloud-provider-kind's proxies, valued
# `<kind cluster>/<namespace>/<service>` (cloud-provider-kind pkg/loadbalancer/server.go,
# createLoadBalancer). The controller is one container per host, shared by every stack.
KIND_LABEL=io.x-k8s.kind.cluster
PROXY_LABEL=io.x-k8s.cloud-provider-kind.loadbalancer.name
CONTROLLER=ocm-fleet-cloud-provider-kind

paused_nodes=""
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "==> $*"; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH; install it (deploy.sh puts pulumi and kind in .tools/) and run again"
  done
}
# output NAME [FLAGS]: one stack output as JSON, or one line saying why there is none.
output() {
  local name=$1 json
  shift
  json=$(pulumi stack output "$name" --stack "$STACK" --json "$@" 2>/dev/null) ||
    fail "stack '$STACK' has no output '$name': deploy it first (./scripts/deploy.sh $STACK), or set STACK"
  python3 -c 'import json, sys; json.loads(sys.argv[1])' "$json" 2>/dev/null ||
    fail "stack '$STACK': the output '$name' is not JSON"
  printf '%s\n' "$json"
}

stack_url() {
  pulumi stack output url --stack "$STACK" 2>/dev/null ||
    fail "stack '$STACK' has no output 'url': deploy it first (./scripts/deploy.sh $STACK), or set STACK"
}

# from_outputs WHAT: one piece of the stack's outputs (secrets hidden), one value a line:
#   second-home   the second home's name (output hubStandby); nothing without one
#   hub           the main cluster's name
#   entries       every entry's URL: entryUrls, the main cluster's first; else url
#   primary       the database home whose address is databaseHost (of databaseHosts)
#   standby-hub   the standby OCM hub's name (output standbyHub); nothing without one
#   edges         "<app cluster> <edge address>" per app cluster
from_outputs() {
  local json
  json=$(pulumi stack output --stack "$STACK" --json 2>/dev/null) ||
    fail "stack '$STACK' has no outputs: deploy it first (./scripts/deploy.sh $STACK), or set STACK"
  printf '%s\n' "$json" | python3 -c '
import json, sys
what, stack = sys.argv[1], sys.argv[2]
try:
    o = json.load(sys.stdin)
except ValueError:
    sys.exit(f"FAIL: stack {stack!r}: its outputs are not JSON")
def need(key):
    if key not in o:
        sys.exit(f"FAIL: stack {stack!r} has no output {key!r}")
    return o[key]
if what == "second-home":
    print("\n".join(sorted(o.get("hubStandby") or {})))
elif what == "hub":
    print(need("hub")["name"])
elif what == "entries":
    urls = o["entryUrls"] if "entryUrls" in o else [need("url")]
    print("\n".join(urls))
elif what == "primary":
    host, homes = need("databaseHost"), need("databaseHosts")
    found = sorted(name for name, address in homes.items() if address == host)
    if len(found) != 1:
        sys.exit(f"FAIL: databaseHost {host!r} is the address of {found} in databaseHosts {homes}")
    print(found[0])
elif what == "standby-hub":
    print((o.get("standbyHub") or {}).get("name", ""))
elif what == "edges":
    for name, cluster in sorted(need("clusters").items()):
        print(name, cluster["edgeAddress"])
' "$1" "$STACK"
}

# The admin kubeconfigs from the stack's (secret) output, one file per cluster, never printed.
write_kubeconfigs() {
  local json
  json=$(output kubeconfigs --show-secrets)
  mkdir -p "$KUBECONFIGS"
  chmod 700 "$KUBECONFIGS"
  printf '%s\n' "$json" |
    python3 -c '
import json, os, sys
target = sys.argv[1]
for name, text in json.load(sys.stdin).items():
    path = os.path.join(target, name + ".kubeconfig")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    print(name)
' "$KUBECONFIGS"
}
app_clusters() {
  local json
  json=$(output clusters)
  printf '%s\n' "$json" |
    python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin))))'
}
hub_cluster() {
  local all apps
  all=$(write_kubeconfigs | sort)
  apps=$(app_clusters)
  comm -23 <(echo "$all") <(echo "$apps") | grep -vxF -e "$(from_outputs second-home)" || true
}
on() {
  local cluster=$1
  shift
  kubectl --kubeconfig "$KUBECONFIGS/$cluster.kubeconfig" "$@"
}

# books URL: /api/books answers 200 with a non-empty JSON list, so the database is behind it.
books() {
  curl -fsS --max-time 10 "$1/api/books" |
    python3 -c '
import json, sys
try:
    books = json.load(sys.stdin)
except ValueError as err:
    sys.exit(f"/api/books did not return JSON: {err}")
if not isinstance(books, list) or not books:
    sys.exit(f"/api/books returned no books: {books!r:.200}")
print(len(books))
'
}

# until_ok WHAT COMMAND...: COMMAND prints what is wrong, or nothing once all is well; it is
# run every POLL_INTERVAL seconds for up to POLL_SECONDS, then WHAT fails with its last word.
until_ok() {
  local what=$1 problem tries i
  shift
  tries=$(((POLL_SECONDS + POLL_INTERVAL - 1) / POLL_INTERVAL))
  [ "$tries" -ge 1 ] || tries=1
  for ((i = 1; ; i++)); do
    problem=$("$@") || problem=${problem:-"$* failed"}
    [ -n "$problem" ] || return 0
    [ "$i" -lt "$tries" ] || fail "$what (after ${POLL_SECONDS}s): $problem"
    sleep "$POLL_INTERVAL"
  done
}

# --- the database homes, through kubectl exec on each home's MariaDB ---------------------------
# sql CLUSTER STATEMENT: the rows of STATEMENT, run as root on that cluster's server.
sql() {
  on "$1" exec -n "$DATA_NAMESPACE" statefulset/mariadb -c replication -- \
    mariadb --defaults-extra-file="$ROOT_CLIENT" --batch --skip-column-names --execute="$2"
}
# replication_problem CLUSTER: nothing when its server replicates with GTID, else what is not.
replication_problem() {
  local status
  status=$(on "$1" exec -n "$DATA_NAMESPACE" statefulset/mariadb -c replication -- \
    mariadb --defaults-extra-file="$ROOT_CLIENT" --execute='SHOW SLAVE STATUS\G') ||
    {
      echo "SHOW SLAVE STATUS failed on $1"
      return 0
    }
  printf '%s\n' "$status" | python3 -c '
import sys
cluster = sys.argv[1]
fields = {}
for line in sys.stdin:
    key, sep, value = line.strip().partition(":")
    if sep and not key.startswith("*"):
        fields[key.strip()] = value.strip()
if not fields:
    print(f"SHOW SLAVE STATUS on {cluster} is empty: its server replicates from no one")
    sys.exit()
want = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Using_Gtid": "Slave_Pos"}
wrong = [
    f"{key} is {fields.get(key)!r}, not {value!r}"
    for key, value in want.items()
    if fields.get(key) != value
]
if wrong:
    error = fields.get("Last_IO_Error") or fields.get("Last_SQL_Error") or ""
    print(f"on {cluster}: " + ", ".join(wrong) + (f" (last error: {error})" if error else ""))
' "$1"
}
# read_only_problem CLUSTER 0|1: nothing when @@global.read_only is that, else what it is.
read_only_problem() {
  local value want=writable
  [ "$2" = 1 ] && want=read-only
  value=$(sql "$1" "SELECT @@global.read_only") || {
    echo "SELECT @@global.read_only failed on $1"
    return 0
  }
  [ "$value" = "$2" ] || echo "@@global.read_only on $1 is '$value', not $2 ($want)"
}
# roles PRIMARY REPLICA: the primary writable, the other read-only and replicating (from it:
# it has no other source).
roles() {
  until_ok "the database on $1 is not writable" read_only_problem "$1" 0
  until_ok "the database on $2 is not read-only" read_only_problem "$2" 1
  until_ok "the database on $2 does not replicate" replication_problem "$2"
  step "database: $1 writable, $2 read-only and replicating (IO and SQL threads running, GTID)"
}
# A row of a table of its own, written as root on the primary only (root may write on a
# read-only server too: the caller checks the role first), to follow the data across a move.
write_mark() {
  sql "$1" "CREATE TABLE IF NOT EXISTS $MARKS (mark VARCHAR(64) PRIMARY KEY);
    INSERT INTO $MARKS VALUES ('$2')" >/dev/null || fail "could not write the row '$2' on $1"
}
mark_problem() {
  local count
  count=$(sql "$1" "SELECT COUNT(*) FROM $MARKS WHERE mark = '$2'" 2>/dev/null) || count=""
  [ "$count" = 1 ] || echo "the row '$2' is not in $MARKS on $1"
}

# --- what each app cluster reaches ---------------------------------------------------------
# alias_problem CLUSTER HOME: nothing when the cluster's stable name points at HOME's Service.
alias_problem() {
  local want="$DATABASE_SERVICE-$2.$APP_NAMESPACE.svc.cluster.local" got
  got=$(on "$1" get service "$DATABASE_SERVICE" -n "$APP_NAMESPACE" \
    -o 'jsonpath={.spec.externalName}') || got="(not readable)"
  [ "$got" = "$want" ] || echo "$DATABASE_SERVICE on $1 points at '$got', not '$want'"
}
books_problem() {
  books "$1" >/dev/null 2>&1 || echo "$1/api/books does not serve books"
}
# app_reaches HOME: every app cluster's stable name points at HOME, and /api/books answers
# through every app cluster's edge and every entry.
app_reaches() {
  local cluster edge url edges entries
  edges=$(from_outputs edges)
  entries=$(from_outputs entries)
  while read -r cluster edge; do
    until_ok "$cluster does not point at the database on $1" alias_problem "$cluster" "$1"
    until_ok "$cluster does not serve books" books_problem "http://$edge"
    step "$cluster: $DATABASE_SERVICE is the database on $1; books through its edge $edge"
  done <<<"$edges"
  for url in $entries; do
    until_ok "the entry $url does not serve books" books_problem "$url"
    step "$url/api/books: books"
  done
}

fleet_ready() {
  local hub second cluster url standby_hub apps primary replica entries
  hub=$(hub_cluster)
  [ -n "$hub" ] || fail "no hub in the stack outputs"
  apps=$(app_clusters)
  for cluster in $apps; do
    step "$cluster: joined and available on the hub $hub"
    on "$hub" wait --for=condition=HubAcceptedManagedCluster "managedcluster/$cluster" --timeout="$WAIT"
    on "$hub" wait --for=condition=ManagedClusterJoined "managedcluster/$cluster" --timeout="$WAIT"
    on "$hub" wait --for=condition=ManagedClusterConditionAvailable "managedcluster/$cluster" \
      --timeout="$WAIT"
    step "$cluster: ManifestWork bookstore Available"
    on "$hub" wait --for=condition=Available manifestwork/bookstore -n "$cluster" --timeout="$WAIT"
  done
  second=$(from_outputs second-home)
  [ -n "$second" ] || return 0
  primary=$(from_outputs primary)
  replica=$hub
  [ "$primary" != "$hub" ] || replica=$second
  roles "$primary" "$replica"
  standby_hub=$(from_outputs standby-hub)
  if [ -n "$standby_hub" ]; then
    step "standby hub $standby_hub: cluster-manager Applied, every app cluster accepted there"
    on "$standby_hub" wait --for=condition=Applied clustermanager/cluster-manager --timeout="$WAIT"
    for cluster in $apps; do
      [ "$(on "$standby_hub" get "managedcluster/$cluster" -o 'jsonpath={.spec.hubAcceptsClient}')" = true ] ||
        fail "the standby hub $standby_hub does not accept $cluster (spec.hubAcceptsClient)"
    done
  fi
  entries=$(from_outputs entries)
  for url in $entries; do
    curl -fsS --max-time 10 -o /dev/null "$url/" || fail "the entry $url does not answer"
    step "entry $url answers"
  done
}

serves() {
  local url count first entries
  first=$(stack_url)
  [[ "$first" == http://?* ]] || fail "the stack's url output is '$first'"
  entries=$(from_outputs entries)
  for url in $entries; do
    [[ "$url" == http://?* ]] || fail "the stack's entry URL is '$url'"
    step "GET $url/ and $url/shop/"
    curl -fsS --max-time 10 -o /dev/null "$url/" || fail "$url/ does not answer"
    curl -fsS --max-time 10 -o /dev/null "$url/shop/" || fail "$url/shop/ does not answer"
    count=$(books "$url") || fail "$url/api/books does not serve books from the database"
    step "$url/api/books: $count books"
  done
  [ "$(head -n 1 <<<"$entries")" = "$first" ] ||
    fail "the url output '$first' is not the first of entryUrls"
}

failover() {
  local app nodes i url entries answered=0
  local -a urls
  entries=$(from_outputs entries)
  mapfile -t urls <<<"$entries"
  app=$(app_clusters | head -n 1)
  nodes=$(docker ps --quiet --filter "label=$KIND_LABEL=$STACK-$app")
  [ -n "$nodes" ] || fail "no node containers for the kind cluster $STACK-$app"
  step "pausing every node of $app: its app stops answering"
  # Unpaused on the way out, pass or fail: destroy needs the agent to remove its ManifestWork.
  paused_nodes=$(echo "$nodes" | tr '\n' ' ')
  trap 'docker unpause $paused_nodes >/dev/null' EXIT
  # shellcheck disable=SC2086 # one argument per container id
  docker pause $paused_nodes >/dev/null
  # The requests take turns over the entries, so each one's failover is checked.
  for i in $(seq "$FAILOVER_REQUESTS"); do
    url=${urls[$(((i - 1) % ${#urls[@]}))]}
    if books "$url" >/dev/null; then
      answered=$((answered + 1))
    else
      echo "request $i to $url failed" >&2
    fi
    sleep 1
  done
  step "$answered of $FAILOVER_REQUESTS requests answered with books while $app was down"
  [ "$answered" -eq "$FAILOVER_REQUESTS" ] || fail "the URL stopped answering while $app was down"
}

# move_primary SETTING NEW OLD: the promotion as docs/data.md gives it, then what it promises.
move_primary() {
  step "database.primary: $1, then $DEPLOY $STACK --yes"
  pulumi config set --path ocm-fleet:database.primary "$1" --stack "$STACK"
  "$DEPLOY" "$STACK" --yes || fail "$DEPLOY $STACK failed with database.primary $1"
  [ "$(from_outputs primary)" = "$2" ] ||
    fail "after database.primary $1, databaseHost is not the address of the database on $2"
  roles "$2" "$3"
  app_reaches "$2"
}

promote_and_back() {
  local hub second run
  second=$(from_outputs second-home)
  [ -n "$second" ] ||
    fail "stack '$STACK' has no second home (no output hubStandby): promote-and-back needs hub.standby"
  hub=$(from_outputs hub)
  [ "$(from_outputs primary)" = "$hub" ] ||
    fail "the database on $hub is not the primary before the promotion: set database.primary main first"
  write_kubeconfigs >/dev/null
  run=$(date +%s)
  step "before: the database on $hub takes the writes"
  roles "$hub" "$second"
  write_mark "$hub" "$run-main"
  until_ok "the row written on $hub did not reach $second" mark_problem "$second" "$run-main"

  move_primary standby "$second" "$hub"
  until_ok "a row written before the promotion is lost" mark_problem "$second" "$run-main"
  write_mark "$second" "$run-standby"
  until_ok "the former primary $hub does not follow $second" mark_problem "$hub" "$run-standby"
  step "rows written before and after the promotion are on both homes"

  move_primary main "$hub" "$second"
  until_ok "a row written on $second is lost on the way back" mark_problem "$hub" "$run-standby"
  write_mark "$hub" "$run-back"
  until_ok "$second does not follow $hub again" mark_problem "$second" "$run-back"
  step "back on $hub: every row on both homes"
}

# The stack's kind clusters (from its outputs, by the name kind.py gives them) and the Docker
# volumes their containers and proxies mount: after destroy there are no outputs to ask.
inventory() {
  local clusters cluster containers container volumes volume
  clusters=$(write_kubeconfigs)
  : >"$INVENTORY"
  for cluster in $clusters; do
    echo "cluster $STACK-$cluster" >>"$INVENTORY"
    containers=$(stack_containers "$STACK-$cluster")
    for container in $containers; do
      volumes=$(docker inspect --format \
        '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$container")
      for volume in $volumes; do
        echo "volume $volume" >>"$INVENTORY"
      done
    done
  done
  step "recorded in $INVENTORY: $(grep -c '^cluster ' "$INVENTORY") kind clusters, $(grep -c '^volume ' "$INVENTORY" || true) volumes"
}
# stack_containers KIND_CLUSTER: the names of its node containers and load balancer proxies.
stack_containers() {
  docker ps --all --filter "label=$KIND_LABEL=$1" --format '{{.Names}}'
  docker ps --all --filter "label=$PROXY_LABEL" \
    --format "{{.Names}} {{.Label \"$PROXY_LABEL\"}}" |
    while read -r name lb; do
      case "$lb" in "$1"/*) echo "$name" ;; esac
    done
}

no_leftovers() {
  local kind_clusters clusters="" containers="" volumes="" kind cluster volume
  [ -s "$INVENTORY" ] ||
    fail "no inventory at $INVENTORY: run ./scripts/e2e.sh inventory before destroy (STACK=$STACK)"
  kind_clusters=$(kind get clusters 2>/dev/null || true)
  while read -r kind cluster; do
    [ "$kind" = cluster ] || continue
    if grep -qxF -e "$cluster" <<<"$kind_clusters"; then clusters+=" $cluster"; fi
    containers+=$(stack_containers "$cluster" | sed 's/^/ /' | tr -d '\n')
  done <"$INVENTORY"
  while read -r kind volume; do
    [ "$kind" = volume ] || continue
    if docker volume inspect "$volume" >/dev/null 2>&1; then volumes+=" $volume"; fi
  done <"$INVENTORY"
  [ -z "$clusters" ] || fail "kind clusters left after destroy:$clusters"
  [ -z "$containers" ] || fail "containers left after destroy:$containers"
  [ -z "$volumes" ] || fail "volumes left after destroy:$volumes"
  # The controller is shared: destroy leaves it to the other stacks' clusters, if any.
  if [ -z "$kind_clusters" ] && docker container inspect "$CONTROLLER" >/dev/null 2>&1; then
    fail "containers left after destroy: $CONTROLLER, with no kind cluster left on this host"
  fi
  step "no kind cluster, container or volume of stack $STACK left"
}

collect() {
  local dir=$1 cluster
  mkdir -p "$dir"
  docker ps --all >"$dir/docker-ps.txt" 2>&1 || true
  docker logs "$CONTROLLER" >"$dir/cloud-provider-kind.log" 2>&1 || true
  for cluster in $(kind get clusters 2>/dev/null); do
    kind export logs "$dir/kind-$cluster" --name "$cluster" >/dev/null 2>&1 || true
  done
  for cluster in $(write_kubeconfigs 2>/dev/null); do
    # State without Secrets: artifacts can be read by anyone who can read the run.
    on "$cluster" get nodes,pods,services,events,jobs,statefulsets,deployments -A -o wide \
      >"$dir/$cluster-state.txt" 2>&1 || true
    on "$cluster" get managedclusters,manifestworks,klusterlets,clustermanagers -A -o yaml \
      >"$dir/$cluster-ocm.yaml" 2>&1 || true
    # A home's replication steps (they print no password) and its server's role.
    on "$cluster" logs -n "$DATA_NAMESPACE" statefulset/mariadb -c replication --tail=500 \
      >"$dir/$cluster-replication.log" 2>&1 || true
    {
      sql "$cluster" "SELECT @@global.read_only, @@global.gtid_binlog_pos" 2>&1 || true
      replication_problem "$cluster" 2>&1 || true
    } >"$dir/$cluster-database.txt"
  done
}

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  fleet-ready) need pulumi kubectl curl python3 && fleet_ready ;;
  serves) need pulumi curl python3 && serves ;;
  failover) need pulumi docker curl python3 && failover ;;
  promote-and-back) need pulumi kubectl curl python3 && promote_and_back ;;
  inventory) need pulumi docker python3 && inventory ;;
  no-leftovers) need kind docker && no_leftovers ;;
  collect) collect "${2:?collect needs a directory}" ;;
  -h | --help) usage ;;
  *)
    usage >&2
    echo "error: unknown command '${1:-}'" >&2
    exit 64
    ;;
esac

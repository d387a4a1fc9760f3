#!/usr/bin/env bash
# Checks a running fleet end to end; the e2e workflow calls one subcommand per step.
#
#   ./scripts/e2e.sh fleet-ready      every cluster joined, every ManifestWork Available
#   ./scripts/e2e.sh serves           the public URL serves /, /shop/ and books from /api/books
#   ./scripts/e2e.sh failover         with the first app cluster paused, the URL keeps answering
#   ./scripts/e2e.sh no-leftovers     after destroy: no kind cluster, container or volume
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
  comm -23 <(echo "$all") <(echo "$apps")
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

fleet_ready() {
  local hub cluster
  hub=$(hub_cluster)
  [ -n "$hub" ] || fail "no hub in the stack outputs"
  for cluster in $(app_clusters); do
    step "$cluster: joined and available on the hub $hub"
    on "$hub" wait --for=condition=HubAcceptedManagedCluster "managedcluster/$cluster" --timeout="$WAIT"
    on "$hub" wait --for=condition=ManagedClusterJoined "managedcluster/$cluster" --timeout="$WAIT"
    on "$hub" wait --for=condition=ManagedClusterConditionAvailable "managedcluster/$cluster" \
      --timeout="$WAIT"
    step "$cluster: ManifestWork bookstore Available"
    on "$hub" wait --for=condition=Available manifestwork/bookstore -n "$cluster" --timeout="$WAIT"
  done
}

serves() {
  local url count
  url=$(stack_url)
  [[ "$url" == http://?* ]] || fail "the stack's url output is '$url'"
  step "GET $url/ and $url/shop/"
  curl -fsS --max-time 10 -o /dev/null "$url/" || fail "$url/ does not answer"
  curl -fsS --max-time 10 -o /dev/null "$url/shop/" || fail "$url/shop/ does not answer"
  count=$(books "$url") || fail "$url/api/books does not serve books from the database"
  step "$url/api/books: $count books"
}

failover() {
  local url app nodes i answered=0
  url=$(stack_url)
  app=$(app_clusters | head -n 1)
  nodes=$(docker ps --quiet --filter "label=io.x-k8s.kind.cluster=$STACK-$app")
  [ -n "$nodes" ] || fail "no node containers for the kind cluster $STACK-$app"
  step "pausing every node of $app: its app stops answering"
  # Unpaused on the way out, pass or fail: destroy needs the agent to remove its ManifestWork.
  paused_nodes=$(echo "$nodes" | tr '\n' ' ')
  trap 'docker unpause $paused_nodes >/dev/null' EXIT
  # shellcheck disable=SC2086 # one argument per container id
  docker pause $paused_nodes >/dev/null
  for i in $(seq "$FAILOVER_REQUESTS"); do
    if books "$url" >/dev/null; then
      answered=$((answered + 1))
    else
      echo "request $i failed" >&2
    fi
    sleep 1
  done
  step "$answered of $FAILOVER_REQUESTS requests answered with books while $app was down"
  [ "$answered" -eq "$FAILOVER_REQUESTS" ] || fail "the URL stopped answering while $app was down"
}

no_leftovers() {
  local clusters containers volumes
  clusters=$(kind get clusters 2>/dev/null | grep "^$STACK-" || true)
  containers=$(docker ps --all --format '{{.Names}}')
  volumes=$(docker volume ls --quiet)
  [ -z "$clusters" ] || fail "kind clusters left after destroy: $clusters"
  [ -z "$containers" ] || fail "containers left after destroy: $containers"
  [ -z "$volumes" ] || fail "volumes left after destroy: $volumes"
  step "no kind cluster, container or volume left"
}

collect() {
  local dir=$1 cluster
  mkdir -p "$dir"
  docker ps --all >"$dir/docker-ps.txt" 2>&1 || true
  docker logs ocm-fleet-cloud-provider-kind >"$dir/cloud-provider-kind.log" 2>&1 || true
  for cluster in $(kind get clusters 2>/dev/null); do
    kind export logs "$dir/kind-$cluster" --name "$cluster" >/dev/null 2>&1 || true
  done
  for cluster in $(write_kubeconfigs 2>/dev/null); do
    # State without Secrets: artifacts can be read by anyone who can read the run.
    on "$cluster" get nodes,pods,services,events,jobs,statefulsets,deployments -A -o wide \
      >"$dir/$cluster-state.txt" 2>&1 || true
    on "$cluster" get managedclusters,manifestworks,klusterlets,clustermanagers -A -o yaml \
      >"$dir/$cluster-ocm.yaml" 2>&1 || true
  done
}

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  fleet-ready) need pulumi kubectl python3 && fleet_ready ;;
  serves) need pulumi curl python3 && serves ;;
  failover) need pulumi docker curl python3 && failover ;;
  no-leftovers) need kind docker && no_leftovers ;;
  collect) collect "${2:?collect needs a directory}" ;;
  -h | --help) usage ;;
  *)
    usage >&2
    echo "error: unknown command '${1:-}'" >&2
    exit 64
    ;;
esac

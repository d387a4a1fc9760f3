#!/usr/bin/env bash
# Sends every agent back from the standby OCM hub to the main hub, once the main cluster is back
# (docs/standby-hub.md, "Going back to the main hub"). In this order, each step only once the
# one before it succeeded:
#
#   1. ./scripts/deploy.sh STACK -- --refresh: the main hub's replica set and placement up to
#      date, so that no agent returns to a stale revision;
#   2. on the standby hub, hubAcceptsClient false on every ManagedCluster: each agent stops and
#      takes the main hub's bootstrap kubeconfig;
#   3. wait until every app cluster is ManagedClusterConditionAvailable on the main hub;
#   4. on the standby hub, clear the finalizer of the replica set's ManifestWorks once its
#      placement has dropped them (deleting): their agents, which would remove it, are gone;
#   5. ./scripts/deploy.sh STACK -- --refresh again: the standby hub re-armed (hubAcceptsClient
#      true, as declared).
#
#   ./scripts/return_to_main_hub.sh dev-standby-hub         # asks before each `up`
#   ./scripts/return_to_main_hub.sh dev-standby-hub --yes   # deploy.sh --yes: no questions
#
# STACK defaults to dev, as for deploy.sh; a stack without the output standbyHub is refused.
# Environment: RETURN_WAIT_SECONDS, how long steps 3 and 4 each wait (default 900);
# RETURN_POLL_INTERVAL, seconds between looks (default 10). The kubeconfigs (the stack's
# secret output) are written to a private temporary folder, never printed, removed on exit.
# Every step is safe to repeat: after a failure, fix what it names and run the script again.
set -euo pipefail
# A failure inside $(...) stops the script too, not only the substitution (bash 4.4 and later).
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."

WAIT_SECONDS=${RETURN_WAIT_SECONDS:-900}
POLL_INTERVAL=${RETURN_POLL_INTERVAL:-10}
# Step 1 and 5 go through deploy.sh, for its preview with the policy pack, its question, its
# backend and CLI, and its refusal of PULUMI_K8S_SKIP_UPDATE_UNREACHABLE left set by a
# `--main-lost` run, which would skip objects instead of bringing them up to date.
DEPLOY=${RETURN_DEPLOY:-./scripts/deploy.sh}
# What the replica set's controller labels its ManifestWorks with, `<namespace>.<name>`
# (components/app/rollout.py, REPLICA_SET_LABEL; components/config.py, NAMESPACE).
WORKS_LABEL=work.open-cluster-management.io/manifestworkreplicaset=ocm-fleet.bookstore

fail() {
  echo "error: $*" >&2
  exit 1
}
step() { echo "==> $*"; }

stack=""
deploy_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --yes | -y) deploy_args=(--yes) ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*) fail "unknown option $1 (see $0 --help)" ;;
    *)
      [ -z "$stack" ] || fail "one stack at a time: got '$stack' and '$1'"
      stack=$1
      ;;
  esac
  shift
done
stack=${stack:-dev}
[[ "$WAIT_SECONDS" =~ ^[0-9]+$ ]] || fail "RETURN_WAIT_SECONDS is '$WAIT_SECONDS', not seconds"
[[ "$POLL_INTERVAL" =~ ^[0-9]+$ ]] || fail "RETURN_POLL_INTERVAL is '$POLL_INTERVAL', not seconds"

# The CLI deploy.sh installs, where it is, and the state it keeps when no backend is logged in.
pinned=$(sed -n 's/^PULUMI_VERSION=//p' scripts/deploy.sh)
[ ! -x ".tools/pulumi-$pinned/pulumi/pulumi" ] || PATH="$PWD/.tools/pulumi-$pinned/pulumi:$PATH"
for tool in pulumi kubectl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH; install it and run again"
done
if [ -z "${PULUMI_BACKEND_URL:-}" ] && [ -d .pulumi-state ] && ! pulumi whoami >/dev/null 2>&1; then
  export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
fi

# --- what the stack says, checked before anything changes -------------------------------------
outputs=$(pulumi stack output --stack "$stack" --json 2>/dev/null) ||
  fail "no outputs for stack '$stack': deploy it first (./scripts/deploy.sh $stack), or sign in to the backend that holds it"
facts=$(printf '%s\n' "$outputs" | python3 -c '
import json, sys
stack = sys.argv[1]
o = json.load(sys.stdin)
if not (o.get("standbyHub") or {}).get("name"):
    sys.exit(f"error: stack {stack!r} has no output standbyHub: it has no standby OCM hub, so every "
             "agent is on the main hub already; nothing to return (hub.standby.ocmHub, "
             "docs/standby-hub.md)")
print(o["hub"]["name"], o["standbyHub"]["name"], *sorted(o.get("clusters") or {}))
' "$stack") || exit 1
read -r main standby rest <<<"$facts"
read -r -a apps <<<"${rest:-}"
[ ${#apps[@]} -gt 0 ] || fail "stack '$stack' has no app clusters in its output clusters"

kubeconfigs=$(mktemp -d)
trap 'rm -rf "$kubeconfigs"' EXIT
chmod 700 "$kubeconfigs"
# The admin kubeconfigs from the stack's secret output, one file per cluster, never printed.
write_kubeconfigs() {
  pulumi stack output kubeconfigs --stack "$stack" --json --show-secrets 2>/dev/null |
    python3 -c '
import json, os, sys
for name, text in json.load(sys.stdin).items():
    path = os.path.join(sys.argv[1], name + ".kubeconfig")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
' "$kubeconfigs" || fail "cannot read the output kubeconfigs of stack '$stack'"
  for cluster in "$main" "$standby"; do
    [ -s "$kubeconfigs/$cluster.kubeconfig" ] ||
      fail "the output kubeconfigs of stack '$stack' has none for $cluster"
  done
}
on() {
  local cluster=$1
  shift
  kubectl --kubeconfig "$kubeconfigs/$cluster.kubeconfig" "$@"
}
write_kubeconfigs
on "$main" get managedclusters -o name >/dev/null 2>&1 ||
  fail "the main hub $main does not answer: the return needs the main cluster back; nothing changed"
on "$standby" get managedclusters -o name >/dev/null 2>&1 ||
  fail "the standby hub $standby does not answer; nothing changed"
undo="./scripts/deploy.sh $stack -- --refresh (the re-arm: hubAcceptsClient true on the standby hub $standby, as declared)"

# --- 1. the main hub up to date ----------------------------------------------------------------
step "1/5 the main hub's replica set and placement up to date: $DEPLOY $stack ${deploy_args[*]:+${deploy_args[*]} }-- --refresh"
"$DEPLOY" "$stack" ${deploy_args[@]+"${deploy_args[@]}"} -- --refresh ||
  fail "step 1 failed ($DEPLOY $stack -- --refresh): no agent was sent back; fix what it names and run again"
# The refresh may have renewed a credential.
write_kubeconfigs

# --- 2. every agent sent back ------------------------------------------------------------------
step "2/5 the standby hub $standby stops accepting every ManagedCluster (hubAcceptsClient false)"
refused=$(on "$standby" get managedclusters -o name) ||
  fail "cannot list the ManagedClusters of the standby hub $standby; no agent was sent back"
for cluster in $refused; do
  on "$standby" patch "$cluster" --type merge -p '{"spec":{"hubAcceptsClient":false}}' >/dev/null ||
    fail "cannot refuse $cluster on the standby hub $standby; to undo what was refused: $undo"
  echo "    ${cluster##*/}"
done

# tries: how many looks fit in WAIT_SECONDS, at least one.
tries=$(((WAIT_SECONDS + POLL_INTERVAL - 1) / (POLL_INTERVAL > 0 ? POLL_INTERVAL : 1)))
[ "$tries" -ge 1 ] || tries=1

# --- 3. every app cluster on the main hub ------------------------------------------------------
step "3/5 waiting (up to ${WAIT_SECONDS}s) until every app cluster is Available on the main hub $main"
# missing: the app clusters whose ManagedCluster on the main hub is not Available=True.
missing() {
  local json
  json=$(on "$main" get managedclusters -o json 2>/dev/null) || {
    echo "(the main hub $main did not answer)"
    return 0
  }
  printf '%s\n' "$json" | python3 -c '
import json, sys
available = {
    item["metadata"]["name"]
    for item in json.load(sys.stdin).get("items") or []
    for c in (item.get("status") or {}).get("conditions") or []
    if c.get("type") == "ManagedClusterConditionAvailable" and c.get("status") == "True"
}
print(" ".join(name for name in sys.argv[1:] if name not in available))
' "${apps[@]}"
}
last=""
for ((i = 1; ; i++)); do
  waiting=$(missing) || waiting="(the main hub $main answered no list of ManagedClusters)"
  [ -n "$waiting" ] || break
  [ "$waiting" = "$last" ] || echo "    not yet Available on $main: $waiting"
  last=$waiting
  [ "$i" -lt "$tries" ] ||
    fail "after ${WAIT_SECONDS}s not Available on the main hub $main: $waiting. The standby hub $standby still does not accept them, so they are on no hub: find why they do not join $main (kubectl get managedclusters there; the klusterlet's logs on each cluster), then run this script again; or undo, and the agents that cannot reach $main go back to $standby: $undo"
  sleep "$POLL_INTERVAL"
done
step "every app cluster is Available on $main: ${apps[*]}"

# --- 4. the standby hub's ManifestWorks, dropped, without their finalizer ----------------------
step "4/5 the standby hub's ManifestWorks of the replica set ($WORKS_LABEL): finalizers cleared once deleting"
# works: "deleting NAMESPACE NAME" or "kept NAMESPACE NAME" per labelled ManifestWork. The label
# is checked here too, so that nothing else loses its finalizer whatever the selector returns.
works() {
  local json
  json=$(on "$standby" get manifestworks -A -l "$WORKS_LABEL" -o json) || return 1
  printf '%s\n' "$json" | python3 -c '
import json, sys
key, _, value = sys.argv[1].partition("=")
for item in json.load(sys.stdin).get("items") or []:
    meta = item["metadata"]
    if (meta.get("labels") or {}).get(key) == value:
        state = "deleting" if meta.get("deletionTimestamp") else "kept"
        print(state, meta["namespace"], meta["name"])
' "$WORKS_LABEL"
}
last=""
for ((i = 1; ; i++)); do
  listed=$(works) || fail "cannot list the ManifestWorks of the standby hub $standby; not re-armed. Run this script again"
  [ -n "$listed" ] || break
  kept=""
  while read -r state namespace name; do
    if [ "$state" = deleting ]; then
      on "$standby" -n "$namespace" patch manifestwork "$name" --type merge \
        -p '{"metadata":{"finalizers":null}}' >/dev/null ||
        fail "cannot clear the finalizer of $namespace/$name on $standby; not re-armed. Run this script again"
      echo "    $namespace/$name: finalizer cleared"
    else
      kept+=" $namespace/$name"
    fi
  done <<<"$listed"
  # Dropped by the placement about 160 s after the agents left (lease 100 s + toleration 60 s).
  if [ -n "$kept" ] && [ "$kept" != "$last" ]; then
    echo "    waiting for the standby hub's placement to drop:$kept"
  fi
  last=$kept
  [ "$i" -lt "$tries" ] ||
    fail "after ${WAIT_SECONDS}s the standby hub $standby still has ManifestWorks it has not dropped:${kept:-" (deleting)"}. Not re-armed: run this script again once they are deleting"
  sleep "$POLL_INTERVAL"
done
step "no ManifestWork of the replica set left on $standby"

# --- 5. the standby hub re-armed ---------------------------------------------------------------
step "5/5 the standby hub re-armed: $DEPLOY $stack ${deploy_args[*]:+${deploy_args[*]} }-- --refresh"
"$DEPLOY" "$stack" ${deploy_args[@]+"${deploy_args[@]}"} -- --refresh ||
  fail "step 5 failed: every agent is on the main hub $main, but the standby hub $standby does not accept them yet; run $undo"
step "every agent is on the main hub $main; the standby hub $standby is armed again"

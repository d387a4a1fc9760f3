#!/usr/bin/env bash
# Deploys a stack from a fresh machine: checks, installs, preview with the policy pack, `up`.
#
#   ./scripts/deploy.sh local            # the whole fleet on kind: needs Docker only
#   ./scripts/deploy.sh                  # the dev stack (AWS and Azure); offers local without
#                                        # cloud credentials
#   ./scripts/deploy.sh prod --yes       # another stack, without the question before `up`
#   ./scripts/deploy.sh dev -- --refresh # arguments after `--` go to `pulumi up`
#   ./scripts/deploy.sh dev-standby --main-lost
#                                        # the run that promotes the second home's database
#                                        # while the main cluster is lost (docs/data.md,
#                                        # "Promotion")
#
# Options:
#   --yes                  answer yes: to the question before `up`, and to filling in your
#                          own address and identity on a first run
#   --allow-open-api       accept apiAllowedCidrs with 0.0.0.0/0 (API servers open to anyone)
#   --allow-unresolved-images
#                          deploy images that components/images.yaml has no digest for, by tag
#                          (scripts/check_images.py and the policy pack refuse them otherwise)
#   --main-lost            the main cluster (and any app cluster of its region) does not answer:
#                          the preview and `up` run with
#                          PULUMI_K8S_SKIP_UPDATE_UNREACHABLE=true, so every Kubernetes provider
#                          skips the objects of a cluster whose API does not answer, keeps them in
#                          the state as they were, and the rest of the run goes on. Only for a
#                          stack with hub.standby that this backend already holds. Refuses
#                          `-- --refresh` (the lost region's resources would fail it) and skips
#                          the cloud preflight (quotas and sizes for clusters a promotion does not
#                          create; the lost region's queries would wait for their timeouts). An
#                          ordinary run skips nothing: a cluster that does not answer fails it, so
#                          that variable left set in the shell is refused. Once the main cluster
#                          answers again: an ordinary run with `-- --refresh`.
#
# Order, so that a problem costs seconds, not an install: the preflight (scripts/check.py
# --preflight: the stack file through the program's own config model, the tools and credentials
# of its clouds, kind's inotify limits, the images without a digest) lists every problem at once
# and refuses before anything is installed, created or written; settle apiAllowedCidrs; pin the
# images' digests where the registries answer (into components/images.yaml: review and commit
# it); download the pinned Pulumi CLI and kind into .tools/, verified against the checksum files
# published with each release; install the Python packages; preview with the policy pack; ask;
# `pulumi up`.
#
# State: if you are logged in to a Pulumi backend (`pulumi whoami` works), that backend is used.
# Otherwise the state goes to the local file backend in .pulumi-state/ (git-ignored), for this
# command only: your Pulumi login is not changed. The file backend encrypts the stack's secrets
# with a passphrase: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) first, or
# type it when asked. Keep it: without it the stack's secrets cannot be decrypted.
set -euo pipefail
cd "$(dirname "$0")/.."

PULUMI_VERSION=3.272.0
KIND_VERSION=v0.31.0
TOOLS="$PWD/.tools"
# One folder per version: bumping a pin installs the new release next to the old one.
PULUMI_DIR="$TOOLS/pulumi-$PULUMI_VERSION"
KIND_DIR="$TOOLS/kind-$KIND_VERSION"
PUBLIC_ADDRESS_URL=${OCM_FLEET_PUBLIC_ADDRESS_URL:-https://checkip.amazonaws.com}

fail() {
  echo "error: $*" >&2
  exit 1
}
step() { echo "==> $*"; }
interactive() { [ -t 0 ]; }
# Scratch folders (the preflight's digests, the downloads), removed however the script ends.
scratch_dirs=()
remove_scratch() { [ ${#scratch_dirs[@]} -eq 0 ] || rm -rf "${scratch_dirs[@]}"; }
trap remove_scratch EXIT
new_scratch() {
  scratch=$(mktemp -d)
  scratch_dirs+=("$scratch")
}
# ask QUESTION: true on yes. --yes answers yes; without a terminal the answer is no.
ask() {
  local reply
  if [ "$assume_yes" = 1 ]; then
    echo "$1 yes (--yes)"
    return 0
  fi
  interactive || return 1
  read -r -p "$1 [y/N] " reply
  [[ "$reply" =~ ^[Yy] ]]
}

# --- arguments --------------------------------------------------------------------------------
stack=""
assume_yes=0
allow_open_api=0
allow_unresolved_images=0
main_lost=0
up_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --yes | -y) assume_yes=1 ;;
    --allow-open-api) allow_open_api=1 ;;
    --allow-unresolved-images) allow_unresolved_images=1 ;;
    --main-lost) main_lost=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --)
      shift
      up_args=("$@")
      break
      ;;
    -*) fail "unknown option $1 (see $0 --help)" ;;
    *)
      [ -z "$stack" ] || fail "one stack at a time: got '$stack' and '$1'"
      stack=$1
      ;;
  esac
  shift
done

# The provider's own reading of the variable (pulumi_kubernetes/_utilities.py (get_env_bool)).
env_true() { case "${1:-}" in 1 | t | T | true | TRUE | True) return 0 ;; *) return 1 ;; esac }
if [ "$main_lost" = 1 ]; then
  for arg in ${up_args[@]+"${up_args[@]}"}; do
    case "$arg" in
      -r | --refresh | --refresh=[1tT]*)
        fail "--main-lost refuses $arg: a refresh reads every cloud resource too, and those in the lost region fail it while its cloud does not answer; the unreachable clusters' objects would only be kept as the state has them. Refresh in the first ordinary run after the main cluster answers again (docs/data.md, \"Promotion\")"
        ;;
    esac
  done
  ! env_true "${PULUMI_K8S_DELETE_UNREACHABLE:-}" ||
    fail "--main-lost with PULUMI_K8S_DELETE_UNREACHABLE set would drop every object of the lost clusters from the state; unset it: that variable is for giving up a home for good (docs/data.md, \"Promotion\")"
elif env_true "${PULUMI_K8S_SKIP_UPDATE_UNREACHABLE:-}"; then
  fail "PULUMI_K8S_SKIP_UPDATE_UNREACHABLE is set in this shell: this run would silently skip every cluster that does not answer. Unset it, or pass --main-lost if the main cluster is lost"
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
  fail "Python 3.11 or newer is needed; point PYTHON at one (PYTHON=python3.12 $0)"

# --- which stack ---------------------------------------------------------------------------------
aws_ready() { command -v aws >/dev/null 2>&1 && aws sts get-caller-identity >/dev/null 2>&1; }
azure_ready() {
  [ -n "${ARM_CLIENT_ID:-}" ] || { command -v az >/dev/null 2>&1 && az account show >/dev/null 2>&1; }
}

if [ -z "$stack" ]; then
  if aws_ready || azure_ready; then
    stack=dev
  else
    echo "No AWS or Azure credentials on this machine: the dev stack needs both clouds."
    echo "The local fleet needs only Docker: a hub and two app clusters on kind, free, on this"
    echo "machine (./scripts/deploy.sh local)."
    ask "Deploy the local fleet now?" ||
      fail "nothing deployed; run ./scripts/deploy.sh local, or sign in to AWS and Azure"
    stack=local
  fi
fi
config="Pulumi.${stack}.yaml"
[ -f "$config" ] || fail "$config not found: copy Pulumi.dev.yaml to $config and edit it"

# --- preflight: every problem at once, before anything is installed, created or written -------
check_args=(--filled-by-deploy apiAllowedCidrs --filled-by-deploy eksAdminPrincipals)
[ "$allow_unresolved_images" = 0 ] || check_args+=(--allow-unresolved-images)
# OCM_FLEET_TEST_REGISTRIES="HOST=URL ...": registries answered elsewhere (the tests' stand-in).
for registry in ${OCM_FLEET_TEST_REGISTRIES:-}; do
  check_args+=(--registry "$registry")
done
step "preflight: $config, tools, credentials, images (scripts/check.py)"
new_scratch
pins="$scratch/pins.json"
facts=$("$python" scripts/check.py "$stack" --preflight --facts --save-pins "$pins" "${check_args[@]}") ||
  fail "nothing installed, created or written; fix the problems above and run again"
# Plain variables, not an associative array: macOS still ships bash 3.2.
clouds="" api_cidrs="" open_api=no eks_admin_principals=no second_home=no
while IFS='=' read -r key value; do
  case "$key" in
    clouds) clouds=$value ;;
    api_cidrs) api_cidrs=$value ;;
    open_api) open_api=$value ;;
    eks_admin_principals) eks_admin_principals=$value ;;
    second_home) second_home=$value ;;
  esac
done <<<"$facts"
[ "$main_lost" = 0 ] || [ "$second_home" = yes ] ||
  fail "--main-lost is for a fleet with a second home (ocm-fleet:hub.standby), and $config has none: nothing could take over the database"

# A pulumi or kind already on PATH is used, unless OCM_FLEET_PINNED_TOOLS=1 (CI) asks for
# exactly the pinned releases.
on_path() { [ "${OCM_FLEET_PINNED_TOOLS:-0}" != 1 ] && command -v "$1" >/dev/null 2>&1; }
downloads=()
[ -x "$PULUMI_DIR/pulumi/pulumi" ] || on_path pulumi || downloads+=(pulumi)
if [[ " $clouds " == *" kind "* ]]; then
  [ -x "$KIND_DIR/kind" ] || on_path kind || downloads+=(kind)
fi
if [ ${#downloads[@]} -gt 0 ]; then
  command -v curl >/dev/null 2>&1 || fail "curl is needed to download ${downloads[*]}"
  command -v sha256sum >/dev/null 2>&1 || command -v shasum >/dev/null 2>&1 ||
    fail "sha256sum or shasum is needed to verify ${downloads[*]}"
fi
"$python" -c 'import ensurepip' 2>/dev/null || [ -x .venv/bin/python ] ||
  fail "'$python' cannot create virtual environments (no ensurepip); on Debian/Ubuntu: apt-get install python3-venv"

# --- who may reach the API servers ---------------------------------------------------------------
# Settled before any install; written into the stack once the Pulumi CLI is there.
new_api_cidr=""
public_address() { curl -fsS --max-time 10 "$PUBLIC_ADDRESS_URL" | tr -d '[:space:]'; }
if [ "$open_api" = yes ] || [ -z "$api_cidrs" ]; then
  address=$(public_address 2>/dev/null || true)
  [[ "$address" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || address=""
fi
if [ "$open_api" = yes ] && [ "$allow_open_api" = 0 ]; then
  echo "$config opens the Kubernetes API servers to everyone (apiAllowedCidrs: 0.0.0.0/0)."
  if [ -n "$address" ] && interactive && ask "Allow only your address, $address/32, instead?"; then
    new_api_cidr="$address/32"
  else
    fail "refusing to deploy API servers open to 0.0.0.0/0. Put your address${address:+ ($address/32)} in ocm-fleet:apiAllowedCidrs, or pass --allow-open-api"
  fi
elif [ -z "$api_cidrs" ]; then
  [ -n "$address" ] ||
    fail "ocm-fleet:apiAllowedCidrs is not set in $config and your public address is unknown; set it to your address as a /32"
  echo "ocm-fleet:apiAllowedCidrs is not set: the Kubernetes API servers need to know who may reach them."
  ask "Allow your address, $address/32?" ||
    fail "nothing deployed; set ocm-fleet:apiAllowedCidrs in $config"
  new_api_cidr="$address/32"
fi

# EKS access entries are granted to the principals in the stack config; a first run fills in
# the IAM role (or user) behind the caller's credentials, after asking, before any install.
new_principal=""
if [[ " $clouds " == *" aws "* ]] && [ "$eks_admin_principals" = no ]; then
  caller=$(aws sts get-caller-identity --query Arn --output text)
  principal=$("$python" scripts/caller_role_arn.py "$caller") ||
    fail "cannot derive an IAM principal from $caller; set ocm-fleet:eksAdminPrincipals in $config"
  echo "ocm-fleet:eksAdminPrincipals is not set: EKS admits only the principals listed there."
  ask "Make $principal an EKS cluster admin?" ||
    fail "nothing installed or written; set ocm-fleet:eksAdminPrincipals in $config"
  new_principal=$principal
fi

# --- installs ---------------------------------------------------------------------------------------
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; else shasum -a 256 "$1"; fi |
    cut -d' ' -f1
}
# verify FILE CHECKSUM_FILE NAME: FILE's SHA-256 is the one CHECKSUM_FILE lists for NAME.
verify() {
  local expected actual
  expected=$(awk -v name="$3" '{ sub(/^\*/, "", $2) } $2 == name { print $1 }' "$2")
  # kind publishes one checksum per file, for the file's own name.
  [ -n "$expected" ] || expected=$(awk 'NR == 1 && NF <= 2 { print $1 }' "$2")
  [ -n "$expected" ] || fail "$2 lists no checksum for $3"
  actual=$(sha256_of "$1")
  [ "$expected" = "$actual" ] ||
    fail "checksum mismatch for $3: expected $expected, got $actual; nothing installed"
}
# download WHAT URL FILE: one line saying what failed and what to do, instead of curl's own.
download() {
  local code=0
  curl -fsSL --retry 2 --connect-timeout 15 "$2" -o "$3" 2>/dev/null || code=$?
  [ "$code" = 0 ] && return 0
  case "$code" in
    6 | 7 | 28 | 35) fail "cannot download $1 from ${2%%/releases/*} (curl exit $code: no connection): check your network or proxy (HTTPS_PROXY), or put $1 on PATH yourself and run again" ;;
    22) fail "cannot download $1: $2 was refused or not found (curl exit 22); put $1 on PATH yourself and run again" ;;
    *) fail "cannot download $1 from $2 (curl exit $code); check your network or proxy, or put $1 on PATH yourself" ;;
  esac
}
platform() {
  local os arch
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  arch=$(uname -m)
  case "$arch" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "no $os build for $arch" ;;
  esac
  echo "$os $arch"
}
install_pulumi() {
  local os arch pulumi_arch name base
  read -r os arch <<<"$(platform)"
  pulumi_arch=$arch
  [ "$arch" = amd64 ] && pulumi_arch=x64
  name="pulumi-v${PULUMI_VERSION}-${os}-${pulumi_arch}.tar.gz"
  base="https://github.com/pulumi/pulumi/releases/download/v${PULUMI_VERSION}"
  new_scratch
  step "installing the Pulumi CLI $PULUMI_VERSION into ${PULUMI_DIR#"$PWD"/}"
  download pulumi "$base/$name" "$scratch/$name"
  download pulumi "$base/pulumi-${PULUMI_VERSION}-checksums.txt" "$scratch/checksums.txt"
  verify "$scratch/$name" "$scratch/checksums.txt" "$name"
  rm -rf "$PULUMI_DIR"
  mkdir -p "$PULUMI_DIR"
  tar -xzf "$scratch/$name" -C "$PULUMI_DIR"
  [ -x "$PULUMI_DIR/pulumi/pulumi" ] || fail "the Pulumi archive has no pulumi/pulumi"
}
install_kind() {
  local os arch name base
  read -r os arch <<<"$(platform)"
  name="kind-${os}-${arch}"
  base="https://github.com/kubernetes-sigs/kind/releases/download/${KIND_VERSION}"
  new_scratch
  step "installing kind $KIND_VERSION into ${KIND_DIR#"$PWD"/}"
  download kind "$base/$name" "$scratch/$name"
  download kind "$base/$name.sha256sum" "$scratch/$name.sha256sum"
  verify "$scratch/$name" "$scratch/$name.sha256sum" "$name"
  mkdir -p "$KIND_DIR"
  install -m 0755 "$scratch/$name" "$KIND_DIR/kind"
}

# --- images pinned, then the downloads, then the Python packages ---------------------------------
# The digests the preflight resolved, recorded now that every question is answered.
if [ -s "$pins" ]; then
  "$python" scripts/check.py "$stack" --pin --pins-from "$pins" "${check_args[@]}" ||
    fail "the images' digests could not be recorded (above); nothing else was installed"
fi
# The downloads come first: a network problem shows in seconds, not after the pip installs.
for tool in ${downloads[@]+"${downloads[@]}"}; do
  "install_$tool"
done

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$python" -m venv .venv
fi
step "installing Python dependencies (requirements.txt, policy/requirements.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
if [ ! -x policy/.venv/bin/python ]; then
  "$python" -m venv policy/.venv
fi
policy/.venv/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt

# The project's tools come first, for this script and for the commands Pulumi runs (kind).
export PATH="$PULUMI_DIR/pulumi:$KIND_DIR:$PATH"

# --- stack ------------------------------------------------------------------------------------------
if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
  step "no Pulumi backend logged in: keeping state in $PULUMI_BACKEND_URL"
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    interactive || fail "set PULUMI_CONFIG_PASSPHRASE: the local backend encrypts secrets with it"
    echo "    Pulumi will ask for a passphrase; it encrypts this stack's secrets. Keep it safe."
  fi
elif [[ "${PULUMI_BACKEND_URL:-}" == file://* ]]; then
  # A file backend named in advance (CI) needs its folder.
  mkdir -p "${PULUMI_BACKEND_URL#file://}"
fi
if [ "$main_lost" = 1 ]; then
  # A new, empty stack would be a whole new fleet, not a promotion.
  pulumi stack select "$stack" 2>/dev/null ||
    fail "--main-lost: no stack '$stack' in ${PULUMI_BACKEND_URL:-the logged-in backend}: sign in to the backend that holds its state, or set PULUMI_BACKEND_URL to it"
else
  pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack"
fi

if [ -n "$new_api_cidr" ]; then
  step "apiAllowedCidrs: $new_api_cidr"
  pulumi config rm --stack "$stack" ocm-fleet:apiAllowedCidrs >/dev/null 2>&1 || true
  pulumi config set --stack "$stack" --path 'ocm-fleet:apiAllowedCidrs[0]' "$new_api_cidr"
fi

if [ -n "$new_principal" ]; then
  step "eksAdminPrincipals: $new_principal"
  pulumi config set --stack "$stack" --path 'ocm-fleet:eksAdminPrincipals[0]' "$new_principal"
fi

# --- pre-deploy checks ------------------------------------------------------------------------------
# Checks that must pass before `pulumi up` and may be overridden with a flag go here, each
# refusing with the flag's name (--allow-unresolved-images for image references).
policy_args=(--policy-pack policy)
pre_deploy_checks() {
  # Every image pinned by digest (components/images.yaml); the policy pack checks the same in
  # the preview and the update, and is told the same when the flag allows images by tag.
  if [ "$allow_unresolved_images" = 1 ]; then
    .venv/bin/python scripts/check_images.py --stack-file "$config" --allow-unresolved
    policy_args+=(--policy-pack-config policy/allow-unresolved-images.json)
  else
    .venv/bin/python scripts/check_images.py --stack-file "$config" ||
      fail "nothing deployed: images not pinned by digest (above); run scripts/resolve_digests.py, or pass --allow-unresolved-images"
  fi
}
pre_deploy_checks

# --- preview, question, up ----------------------------------------------------------------------
# The cloud preflight: quotas, sizes, versions and policies, where the clouds' CLIs are signed in.
# What it names may still pass (a quota raised meanwhile), so it asks rather than refuses.
# Not with --main-lost: it checks capacity for clusters and nodes, which a promotion does not
# create, and its queries of the lost region would each wait for their timeout.
if [ "$main_lost" = 1 ]; then
  step "cloud preflight skipped (--main-lost): a promotion creates no cluster or node"
elif ! .venv/bin/python scripts/cloud_preflight.py "$config"; then
  ask "The cloud preflight (scripts/cloud_preflight.py) names problems above; preview and deploy anyway?" ||
    fail "nothing deployed: fix what the cloud preflight names above"
fi
if [ "$main_lost" = 1 ]; then
  # Every provider reads it, as none sets the flag itself (components/clusters/_base.py).
  export PULUMI_K8S_SKIP_UPDATE_UNREACHABLE=true
  step "--main-lost: PULUMI_K8S_SKIP_UPDATE_UNREACHABLE=true for this preview and up: the objects of every cluster whose API does not answer (the main cluster, any app cluster lost with it) are skipped and kept in the state as they were, each with a warning naming it; check that the preview names only the lost clusters"
fi
step "pulumi preview --stack $stack (with the policy pack)"
pulumi preview --stack "$stack" "${policy_args[@]}"
if [ "$assume_yes" = 0 ]; then
  interactive || fail "no terminal to ask on: rerun with --yes to deploy the preview above"
  ask "Deploy these changes to the stack '$stack'?" || fail "nothing deployed"
fi
step "pulumi up --stack $stack"
pulumi up --stack "$stack" --yes "${policy_args[@]}" ${up_args[@]+"${up_args[@]}"}
echo
echo "The bookstore: $(pulumi stack output url --stack "$stack")"

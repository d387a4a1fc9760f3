#!/usr/bin/env bash
# Sets everything up on a fresh machine and deploys a stack (default: dev) with `pulumi up`.
#   ./scripts/deploy.sh            # the dev stack, Pulumi.dev.yaml
#   ./scripts/deploy.sh prod --yes # another stack; arguments after the name go to `pulumi up`
#
# State: if you are logged in to a Pulumi backend (`pulumi whoami` works), that backend is used.
# Otherwise the state goes to the local file backend in .pulumi-state/ (git-ignored), for this
# command only: your Pulumi login is not changed. The file backend encrypts the stack's secrets
# with a passphrase: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) first, or
# type it when asked. Keep it: without it the stack's secrets cannot be decrypted.
set -euo pipefail
cd "$(dirname "$0")/.."

stack=${1:-dev}
[ $# -gt 0 ] && shift
config="Pulumi.${stack}.yaml"

fail() { echo "error: $*" >&2; exit 1; }

command -v pulumi >/dev/null 2>&1 ||
  fail "the Pulumi CLI is not installed: https://www.pulumi.com/docs/iac/download-install/"
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
  fail "Python 3.11 or newer is needed; point PYTHON at one (PYTHON=python3.12 $0)"
[ -f "$config" ] || fail "$config not found: copy Pulumi.dev.yaml to $config and edit it"

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
echo "==> installing Python dependencies (requirements.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

# Credentials for the clouds the stack uses, checked before anything is created.
clouds=$(.venv/bin/python scripts/stack_clouds.py "$config")
if [[ " $clouds " == *" aws "* ]]; then
  command -v aws >/dev/null 2>&1 ||
    fail "the AWS CLI is needed (EKS kubeconfigs call 'aws eks get-token'): https://aws.amazon.com/cli/"
  aws sts get-caller-identity >/dev/null ||
    fail "no working AWS credentials: run 'aws configure' or 'aws sso login', or set AWS_PROFILE"
fi
if [[ " $clouds " == *" azure "* ]] && [ -z "${ARM_CLIENT_ID:-}" ]; then
  command -v az >/dev/null 2>&1 ||
    fail "sign in to Azure: install the Azure CLI and run 'az login', or set ARM_* variables"
  az account show >/dev/null 2>&1 || fail "no Azure session: run 'az login'"
fi

if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
  echo "==> no Pulumi backend logged in: keeping state in $PULUMI_BACKEND_URL"
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    [ -t 0 ] || fail "set PULUMI_CONFIG_PASSPHRASE: the local backend encrypts secrets with it"
    echo "    Pulumi will ask for a passphrase; it encrypts this stack's secrets. Keep it safe."
  fi
fi

pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack"
echo "==> pulumi up --stack $stack"
pulumi up --stack "$stack" "$@"
echo
echo "The bookstore: $(pulumi stack output url --stack "$stack")"

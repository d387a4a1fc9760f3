#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs lint, format check and pytest.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/test_eks_cluster.py -k imds
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed ('$python' is $("$python" --version 2>&1))." >&2
  echo "       Install it, or point PYTHON at one: PYTHON=python3.12 ./scripts/test.sh" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
echo "==> installing Python dependencies (requirements-dev.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# The HAProxy configs are checked by the real haproxy binary.
if ! command -v haproxy >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing haproxy (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "==> installing haproxy (Debian package)"
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  elif [ "${CI:-}" = "true" ]; then
    echo "error: haproxy is not installed and cannot be installed here; CI must run its checks." >&2
    exit 1
  else
    echo "warning: haproxy not found; the 'haproxy -c' tests will be skipped." >&2
    echo "         Install it to run them: apt-get install haproxy / brew install haproxy" >&2
  fi
fi

echo "==> ruff check"
.venv/bin/ruff check .
echo "==> ruff format --check"
.venv/bin/ruff format --check .
echo "==> pytest"
exec .venv/bin/pytest "$@"

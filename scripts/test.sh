#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs lint, format check and pytest.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/test_eks_cluster.py -k imds
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h | --help)
    cat <<'EOF'
Usage: ./scripts/test.sh [PYTEST ARGS...]

Sets up everything the tests need, then runs ruff (lint and format check) and pytest:
  - .venv with requirements-dev.txt (created if absent);
  - the Debian packages the real-binary tests run: haproxy, shellcheck, prometheus and
    mariadb-server (with apt-get, as root or through sudo; elsewhere their tests skip).
Arguments go to pytest, e.g. ./scripts/test.sh tests/test_check.py -k region
Tests that need ../shared/reference (upstream schemas and charts) skip without it, unless
OCM_FLEET_REQUIRE_REFERENCE=1 (as .ci/run sets) makes them fail.
EOF
    exit 0
    ;;
esac

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed ('$python' is $("$python" --version 2>&1))." >&2
  echo "       Install it, or point PYTHON at one: PYTHON=python3.12 ./scripts/test.sh" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  if ! "$python" -c 'import ensurepip' 2>/dev/null; then
    echo "error: '$python' cannot create virtual environments (no ensurepip)." >&2
    echo "       On Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
echo "==> installing Python dependencies (requirements-dev.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# Real tools check what the program renders: haproxy (proxy configs), shellcheck (scripts),
# prometheus (promtool on rendered configs and rules, and a real run against HAProxy).
# mariadb-server runs the schema Job's seed guard against a real server, and two servers for
# the database replication tests. Each entry is the Debian package, then the program that
# shows it is there (the server lives in /usr/sbin).
missing=()
for entry in haproxy:haproxy shellcheck:shellcheck prometheus:prometheus mariadb-server:mariadbd; do
  package=${entry%%:*} program=${entry#*:}
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=""
  if [ "$(id -u)" = 0 ]; then
    as_root="env"
  elif sudo -n true 2>/dev/null; then
    as_root="sudo -n env"
  fi
  if command -v apt-get >/dev/null 2>&1 && [ -n "$as_root" ]; then
    echo "==> installing ${missing[*]} (Debian packages)"
    $as_root DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $as_root DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif [ "${CI:-}" = "true" ]; then
    echo "error: ${missing[*]} missing and not installable here; CI must run those checks." >&2
    exit 1
  else
    echo "warning: ${missing[*]} not found; the tests that run them will be skipped." >&2
    echo "         Install them: apt-get install ${missing[*]} / brew install ${missing[*]}" >&2
  fi
fi

echo "==> ruff check"
.venv/bin/ruff check .
echo "==> ruff format --check"
.venv/bin/ruff format --check .
echo "==> pytest"
exec .venv/bin/pytest "$@"

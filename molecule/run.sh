#!/usr/bin/env bash
# The Molecule scenario as `make test` runs it: converge, a second converge that must change nothing,
# a --check --diff run that must change nothing, then the testinfra verification. The container is
# removed at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash molecule/prepare-host.sh
trap 'molecule destroy >/dev/null 2>&1 || true' EXIT
molecule destroy >/dev/null 2>&1 || true
molecule create
molecule prepare
molecule converge
molecule idempotence
log=$(mktemp)
molecule converge -- --check --diff 2>&1 | tee "$log"
if ! sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -Eq 'econe-frontend +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0'; then
  echo "molecule/run.sh: the --check --diff run on the converged host reports changes" >&2
  exit 1
fi
molecule verify

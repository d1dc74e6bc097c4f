#!/usr/bin/env bash
# The Molecule scenario as `make test` runs it: a --check --diff run before anything of econe is
# deployed (it must succeed: the README's first step), converge (with --diff: a file holding a secret
# that changes shows in the output unless its task is no_log), a second converge that must change
# nothing, a --check --diff run that must change nothing, then the testinfra verification, which also
# reads what those four printed (ECONE_DEPLOY_LOG: no secret may be in it). The container is removed
# at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash molecule/prepare-host.sh
logs=$(mktemp -d)
trap 'molecule destroy >/dev/null 2>&1 || true; rm -rf "$logs"' EXIT
molecule destroy >/dev/null 2>&1 || true
molecule create
molecule prepare
molecule converge -- --check --diff 2>&1 | tee "$logs/first-check.log"
molecule converge -- --diff 2>&1 | tee "$logs/converge.log"
molecule idempotence 2>&1 | tee "$logs/idempotence.log"
molecule converge -- --check --diff 2>&1 | tee "$logs/check.log"
if ! sed 's/\x1b\[[0-9;]*m//g' "$logs/check.log" | grep -Eq 'econe-frontend +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0'; then
  echo "molecule/run.sh: the --check --diff run on the converged host reports changes" >&2
  exit 1
fi
cat "$logs/first-check.log" "$logs/converge.log" "$logs/idempotence.log" "$logs/check.log" > "$logs/deploy.log"
ECONE_DEPLOY_LOG="$logs/deploy.log" molecule verify

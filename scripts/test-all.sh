#!/usr/bin/env bash
# Installs everything the tests need, then runs every test. This is the README's test command
# (npm run test:all) and exactly what CI runs (.ci/run). Safe to run again: installs are skipped
# when present. Needs root or sudo for apt-get on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the integration tests drive for real.
#   c-icap  → /usr/bin/c-icap-client (and the c-icap server the benchmarks compare against)
missing=()
command -v c-icap-client >/dev/null 2>&1 || missing+=(c-icap)
if ((${#missing[@]})); then
  echo "test-all: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
npx tsc -p tsconfig.test.json
npx vitest run

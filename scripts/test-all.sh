#!/usr/bin/env bash
# Installs everything the tests need, then runs every test. This is the README's test command
# (npm run test:all) and exactly what CI runs (.ci/run). Safe to run again: installs are skipped
# when present. Needs root or sudo for apt-get on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# ../shared beside the repository (CI clones it there) holds the container base-image tool.
SHARED_TOOLS="$(pwd)/../shared/tools"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the integration tests drive for real.
#   c-icap  → /usr/bin/c-icap-client (and the c-icap server the benchmarks compare against)
#   libc-icap-mod-virus-scan → c-icap's virus_scan service and clamd_mod: the real upstream of the
#             `icap` backend (test/helpers/c-icap.ts, test/integration/icap-upstream.test.ts)
#   haproxy → /usr/sbin/haproxy in front of two servers (test/integration/haproxy.test.ts)
#   podman, runc, debootstrap → build and run the Dockerfile (test/integration/container.test.ts)
#   systemd → systemd-analyze verify for config/examples/icap-bridge.service
#   squid-openssl → /usr/sbin/squid and its basic_ncsa_auth helper (test/integration/squid*.test.ts;
#             the tests run private instances, never the Debian service). Debian's squid built
#             with OpenSSL: the package squid (GnuTLS) refuses icap_service ... icaps:// tls-cafile=
#             (squid-icaps.test.ts). Same 5.7 otherwise; it conflicts with squid and replaces it.
#   clamav-daemon, clamav → /usr/sbin/clamd and /usr/bin/sigtool: a private clamd with an offline
#             signature DB (test/helpers/clamd.ts, test/integration/clamd.test.ts); never the Debian
#             service, and never freshclam
#   gcc, libc6-dev → cc builds the benchmark's native load generator (bench/native/icap-native.c;
#             test/bench/native-tools.test.ts)
missing=()
command -v c-icap-client >/dev/null 2>&1 || missing+=(c-icap)
ls /usr/lib/*/c_icap/virus_scan.so >/dev/null 2>&1 || missing+=(libc-icap-mod-virus-scan)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
grep -q -- "'--with-openssl'" <<<"$(/usr/sbin/squid -v 2>/dev/null || true)" || missing+=(squid-openssl)
[ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
[ -x /usr/bin/sigtool ] || missing+=(clamav)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
if ((${#missing[@]})); then
  echo "test-all: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The local stand-in for node:20-bookworm-slim the Dockerfile builds FROM (no registry here;
# ../shared/tools/podman-here.md). Idempotent: skipped when the image exists.
if [ ! -f "$SHARED_TOOLS/node-base-image.sh" ]; then
  echo "test-all: $SHARED_TOOLS/node-base-image.sh not found (shared/ must sit beside the repository)" >&2
  exit 1
fi
as_root bash "$SHARED_TOOLS/node-base-image.sh"

npm ci --no-audit --no-fund
npx tsc -p tsconfig.test.json
npx vitest run

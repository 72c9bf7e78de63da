#!/usr/bin/env bash
# Start Debian's c-icap on 127.0.0.1:PORT with a private configuration in a private directory.
#
#   bench/c-icap/start.sh [--port 1345] [--dir DIR] [--virus-scan [--clamd-socket PATH | --clamd-host H --clamd-port P]]
#
# Prints "dir=DIR pid=PID port=PORT" on success and writes the PID to DIR/run.pid.
# The process runs with -N (no daemon) in the background of this script, so $! is the
# c-icap main process; stop it with bench/c-icap/stop.sh DIR (kills by that PID only).
set -euo pipefail

port=1345
dir=""
virus_scan=0
clamd_host=127.0.0.1
clamd_port=3310
clamd_socket=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --virus-scan) virus_scan=1; shift ;;
    --clamd-host) clamd_host="$2"; shift 2 ;;
    --clamd-port) clamd_port="$2"; shift 2 ;;
    --clamd-socket) clamd_socket="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v c-icap >/dev/null 2>&1 && [ ! -x /usr/bin/c-icap ]; then
  echo "start.sh: c-icap not found, installing the Debian package" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get install -y c-icap >&2 || {
    "${sudo_cmd[@]}" apt-get update >&2 && "${sudo_cmd[@]}" apt-get install -y c-icap >&2
  }
fi
cicap_bin="$(command -v c-icap || echo /usr/bin/c-icap)"

# Modules live in a multiarch directory on Debian; find the one holding srv_echo.so.
modules_dir=""
for d in /usr/lib/*/c_icap /usr/lib/c_icap /usr/local/lib/c_icap; do
  if [ -f "$d/srv_echo.so" ]; then modules_dir="$d"; break; fi
done
if [ -z "$modules_dir" ]; then echo "start.sh: srv_echo.so not found" >&2; exit 1; fi
if [ "$virus_scan" -eq 1 ] && [ ! -f "$modules_dir/virus_scan.so" ]; then
  echo "start.sh: virus_scan.so not found, installing the Debian package libc-icap-mod-virus-scan" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get install -y libc-icap-mod-virus-scan >&2 || {
    "${sudo_cmd[@]}" apt-get update >&2 && "${sudo_cmd[@]}" apt-get install -y libc-icap-mod-virus-scan >&2
  }
fi
magic_file=/etc/c-icap/c-icap.magic
[ -f "$magic_file" ] || magic_file=/usr/share/c_icap/c-icap.magic

if [ -z "$dir" ]; then dir="$(mktemp -d "${TMPDIR:-/tmp}/c-icap-bench.XXXXXX")"; fi
mkdir -p "$dir/tmp"

# Refuse to start over a c-icap we started earlier in the same directory that is still alive.
if [ -f "$dir/run.pid" ] && kill -0 "$(cat "$dir/run.pid")" 2>/dev/null; then
  echo "start.sh: c-icap already running with pid $(cat "$dir/run.pid") in $dir" >&2
  exit 1
fi

sed_args=(-e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@MODULES_DIR@|$modules_dir|g"
          -e "s|@MAGIC_FILE@|$magic_file|g" -e "s|@CLAMD_HOST@|$clamd_host|g"
          -e "s|@CLAMD_PORT@|$clamd_port|g" -e "s|@CLAMD_SOCKET@|$clamd_socket|g")
if [ "$virus_scan" -eq 1 ]; then
  sed_args+=(-e 's|^#@VS@ ||')
  if [ -n "$clamd_socket" ]; then sed_args+=(-e 's|^#@VSU@ ||'); else sed_args+=(-e 's|^#@VST@ ||'); fi
fi
sed "${sed_args[@]}" "$here/c-icap.conf.template" > "$dir/c-icap.conf"

# When started as root c-icap keeps running as root unless User/Group are set; the private
# directory is ours either way.
"$cicap_bin" -N -f "$dir/c-icap.conf" >"$dir/stdout.log" 2>&1 </dev/null &
pid=$!
echo "$pid" > "$dir/run.pid"

# Wait (bounded: 100 x 0.1 s) until the port accepts connections.
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: c-icap exited early; see $dir/stdout.log and $dir/server.log" >&2
    cat "$dir/stdout.log" >&2 || true
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "dir=$dir pid=$pid port=$port"
    exit 0
  fi
  sleep 0.1
done
echo "start.sh: c-icap did not open 127.0.0.1:$port within 10 s; stopping it" >&2
"$here/stop.sh" "$dir" >&2 || true
exit 1

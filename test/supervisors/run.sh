#!/usr/bin/env bash
# The supervisors that act on exitOnStall and on systemd's watchdog, for real
# (test/supervisors/*.test.js say what is asserted): systemd as PID 1 of a
# container, PM2 7 from npm, and `docker run --restart` / Compose's restart
# policy on a Docker engine this script starts (test/engine/dockerd.sh) and
# always stops again.
#
#   test/supervisors/run.sh           skips, saying why, where no engine can start
#   CI=true test/supervisors/run.sh   fails instead of skipping
#   test/supervisors/run.sh test/supervisors/docker.test.js   one file
#   SUPERVISORS_PREPARE_ONLY=1 test/supervisors/run.sh      build the caches only
#
# systemd's root file system (Debian bookworm, debootstrap) and PM2 are cached
# under PULSE_TEST_CACHE (default /var/cache/celery-pulse-test), outside the
# checkout: about 2.5 min to build once, reused after.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEP_DEADLINE=$((SECONDS + ${SUPERVISORS_STEP_SECONDS:-330}))
export PULSE_TEST_CACHE="${PULSE_TEST_CACHE:-/var/cache/celery-pulse-test}"

SUITE="supervisor tests"
# shellcheck source=../engine/dockerd.sh
. test/engine/dockerd.sh
engine_checks
engine_install debootstrap

# The Debian mirror apt uses here (deb822 or one-line sources).
mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb\s+(\[[^]]*\]\s+)?http' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | grep -v security | awk '{for (i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# systemd's root file system as a tar, built once (minbase + systemd, dbus,
# and libstdc++ for the host's node, which the container mounts).
export SYSTEMD_ROOTFS="$PULSE_TEST_CACHE/systemd-rootfs.tar"
if ! [ -s "$SYSTEMD_ROOTFS" ]; then
  mkdir -p "$PULSE_TEST_CACHE"
  dir=$(mktemp -d /tmp/pulse-systemd-rootfs.XXXXXX)
  t0=$SECONDS
  if timeout 400 debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libstdc++6 bookworm "$dir" "$(mirror)" >"$dir.log" 2>&1; then
    tar -C "$dir" -cf "$SYSTEMD_ROOTFS.part" . && mv "$SYSTEMD_ROOTFS.part" "$SYSTEMD_ROOTFS"
    echo "$SUITE: systemd root file system built in $((SECONDS - t0)) s, cached as $SYSTEMD_ROOTFS"
  else
    tail -20 "$dir.log" >&2
    echo "$SUITE: debootstrap failed (its log is above)" >&2
  fi
  rm -rf "$dir" "$dir.log"
  [ -s "$SYSTEMD_ROOTFS" ] || { [ "${CI:-}" != true ] || exit 1; unset SYSTEMD_ROOTFS; }
fi
# SUPERVISORS_PREPARE_ONLY=1: the engine's packages and the cached root file
# system only (.ci/run builds them beside other work), no engine, no tests.
if [ -n "${SUPERVISORS_PREPARE_ONLY:-}" ]; then
  echo "$SUITE: prepared (packages installed, ${SYSTEMD_ROOTFS:-no systemd root file system})"
  exit 0
fi

# The three files at once: each mostly waits for its supervisor.
[ "$#" -gt 0 ] || set -- test/supervisors/*.test.js
engine_run_tests 60 --test-concurrency=3 --test-reporter=spec "$@"

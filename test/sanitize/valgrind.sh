#!/usr/bin/env bash
# valgrind memcheck of test/sanitize/scenario.js with the addon built -O1 -g
# (build-valgrind/, loaded through the package's CELERY_PULSE_TEST_NATIVE_PATH
# hook from a folder laid out as a local build). Fails on any memcheck
# error whose stack runs through the addon, and on any definite leak
# allocated by it; errors and leaks inside Node itself are counted and shown.
# Usage: test/sanitize/valgrind.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="${1:-$(mktemp -d /tmp/pulse-valgrind.XXXXXX)}"
test/sanitize/build.sh valgrind
[ -d dist ] || npm run --silent compile
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

xml="$work/memcheck.xml"
started=$SECONDS
rc=0
# --jitless: V8 generates no machine code, so memcheck needs no
# self-modifying-code checks and runs the scenario several times faster.
# --keep-debuginfo: frames of the addon stay named after Node unloads it.
addon_dir="$work/valgrind-addon"
mkdir -p "$addon_dir/build/Release"
cp build-valgrind/celery_pulse.node "$addon_dir/build/Release/"
# nativeStack on (the default): the build marks the raw stack words it copies
# as defined (PULSE_VALGRIND in native_stack.cc), and nothing else.
env -u PREBUILDS_ONLY CELERY_PULSE_TEST_NATIVE_PATH="$addon_dir" CELERY_PULSE_STRATEGY=native \
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --fair-sched=yes --keep-debuginfo=yes \
    --num-callers=40 --xml=yes --xml-file="$xml" --log-file="$work/memcheck.log" \
    node --jitless test/sanitize/scenario.js "$work/files" || rc=$?
echo "valgrind: scenario exit $rc, $((SECONDS - started)) s"
node test/sanitize/valgrind-report.js "$xml" "$addon_dir/build/Release/celery_pulse.node"
[ "$rc" -eq 0 ] || { echo "the scenario failed under valgrind" >&2; tail -50 "$work/memcheck.log" >&2; exit 1; }

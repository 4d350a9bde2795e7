#!/usr/bin/env bash
# The README's container recipes under a real Docker engine (engine.test.js
# says what is asserted). This script installs the engine, starts a dockerd of
# its own in a fresh directory, runs the test, and always stops it again,
# leaving no container, image, service, swarm, network or daemon behind.
#
#   test/engine/run.sh           skips, saying why, where no engine can start
#   CI=true test/engine/run.sh   fails instead of skipping
#
# ENGINE_EXPECT_STALL_LOG=0 and ENGINE_EXPECT_FRAME=0 turn the stall-log
# assertions off (see engine.test.js).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Everything below runs under hard timeouts; this is the whole step's budget.
STEP_DEADLINE=$((SECONDS + ${ENGINE_STEP_SECONDS:-180}))

SUITE="engine test"
# shellcheck source=dockerd.sh
. test/engine/dockerd.sh
engine_checks
engine_install
export ENGINE_OUT="${ENGINE_OUT:-/tmp/pulse-engine-logs}"
mkdir -p "$ENGINE_OUT"
TEST_PID=
trap engine_cleanup EXIT
# A signal ends the test run at once (a foreground child would defer the trap).
trap '[ -z "$TEST_PID" ] || kill -TERM "$TEST_PID" 2>/dev/null; exit 130' INT TERM
engine_start

# The image gets `npm pack` output: dist/ as the sources say now.
timeout 120 npm run --silent compile

left=$((STEP_DEADLINE - SECONDS - 20))
[ "$left" -gt 30 ] || { echo "engine test: no time left for the test (${SECONDS}s used)" >&2; exit 1; }
timeout -k 5 "$left" node --test --test-reporter=spec test/engine/engine.test.js &
TEST_PID=$!
wait "$TEST_PID"

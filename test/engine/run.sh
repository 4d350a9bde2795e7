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
engine_run_tests 30 --test-reporter=spec test/engine/engine.test.js

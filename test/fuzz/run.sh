#!/usr/bin/env bash
# Builds the libFuzzer targets (clang), replays the committed corpus, then
# fuzzes each target for SECONDS (default 60). Usage: test/fuzz/run.sh [SECONDS]
# Exit status: 0 clean, non-zero on a crash or a failed invariant (the input
# is left in .cache/fuzz/<target>/crash-*).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
out=.cache/fuzz
mkdir -p "$out"
CXX="${CXX:-clang++}"
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
for target in request escape; do
  case "$target" in
    request) sources=(native/http_request.cc native/livez.cc native/json_value.cc) ;;
    escape) sources=(native/metrics.cc native/json_value.cc native/diagnose.cc) ;;
  esac
  "$CXX" "${flags[@]}" -o "$out/fuzz_$target" "test/fuzz/fuzz_$target.cc" "${sources[@]}"
  mkdir -p "$out/$target"
  # The committed corpus is replayed as it is; new inputs go to the scratch copy.
  "$out/fuzz_$target" -runs=0 "test/fuzz/corpus/$target"
  if [ "$seconds" -gt 0 ]; then
    cp -n test/fuzz/corpus/"$target"/* "$out/$target/" 2>/dev/null || true
    (cd "$out/$target" && "../fuzz_$target" -max_total_time="$seconds" -max_len=12000 -print_final_stats=1 \
      -artifact_prefix=./ . 2>&1 | grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY)' || true)
    # A crash leaves its input behind: fail.
    if ls "$out/$target"/crash-* "$out/$target"/leak-* "$out/$target"/timeout-* >/dev/null 2>&1; then
      echo "fuzz_$target: a failing input is in $out/$target" >&2
      exit 1
    fi
  fi
done
echo "fuzz: corpus replayed, fuzzed ${seconds} s per target, no failure"

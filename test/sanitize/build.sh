#!/usr/bin/env bash
# Builds instrumented variants of the addon with g++ directly (not binding.gyp,
# not prebuilds/), each into its own folder at the package root:
#   build-asan/celery_pulse.node      ASan + UBSan, -O1 -g
#   build-tsan/celery_pulse.node      TSan, -O1 -g
#   build-valgrind/celery_pulse.node  plain -O1 -g, for memcheck (PULSE_VALGRIND:
#                                     native_stack.cc marks its raw stack copy defined)
# Usage: test/sanitize/build.sh [asan|tsan|valgrind ...]   (default: all three)
# run.sh and valgrind.sh load one through the package's loader.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

node_include="${NODE_INCLUDE_DIR:-$(dirname "$(dirname "$(command -v node)")")/include/node}"
if [ ! -f "$node_include/node_api.h" ]; then
  echo "node_api.h not found in $node_include (set NODE_INCLUDE_DIR)" >&2
  exit 2
fi
napi_include="$root/$(node -p "require('node-addon-api').include_dir")"
digest="$(node scripts/digest.js)"

# The same defines and language flags as binding.gyp.
common=(
  -std=c++17 -fPIC -pthread -shared -g -O1 -fno-omit-frame-pointer
  -fno-rtti -fno-exceptions -fvisibility=hidden -Wall -Wextra -Werror
  -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS
  -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS -DNODE_GYP_MODULE_NAME=celery_pulse
  -DBUILDING_NODE_EXTENSION "-DPULSE_SOURCE_DIGEST=$digest"
  -I"$node_include" -I"$napi_include"
)
# The addon's sources, as binding.gyp lists them.
mapfile -t sources < <(node -e "for (const s of JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8')).targets[0].sources) console.log(s)")

build() {
  local name="$1"; shift
  mkdir -p "build-$name"
  g++ "${common[@]}" "$@" "${sources[@]}" -o "build-$name/celery_pulse.node"
  echo "built build-$name/celery_pulse.node"
}

variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(asan tsan valgrind)
for variant in "${variants[@]}"; do
  case "$variant" in
    asan) build asan -fsanitize=address,undefined -fno-sanitize-recover=all ;;
    tsan) build tsan -fsanitize=thread ;;
    valgrind) build valgrind -DPULSE_VALGRIND ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
done

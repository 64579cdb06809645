#!/usr/bin/env bash
# Installs the Debian tools the tests talk to, only those missing (needs root, as in CI).
set -euo pipefail
declare -A need=(
  [gpg]=gnupg [qemu-img]=qemu-utils [zstd]=zstd [skopeo]=skopeo [umoci]=umoci
  [containerd]=containerd [docker-registry]=docker-registry [fusefat]=fusefat
  [mkfs.vfat]=dosfstools [mkfs.exfat]=exfatprogs [openssl]=openssl [curl]=curl [tinyproxy]=tinyproxy
  [fusermount]=fuse [mkfs.ext4]=e2fsprogs [pgrep]=procps [python3]=python3 [script]=bsdutils [strace]=strace
  [casync]=casync [gcc]=gcc
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing tools for the tests: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# The Debian packages a lab target runs on the host (runc, CNI plugins, buildah, ...): installs
# the missing ones with apt-get, so that `make k8s-node` and `make k8s-images` work on a fresh
# machine. Usage: host-packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "k8s-lab: missing Debian packages: ${missing[*]}; run as root or apt-get install them" >&2
  exit 1
fi
echo "k8s-lab: installing ${missing[*]} with apt-get (first time only)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs what oneha's tests and demo need on a fresh Debian 12 machine (run as root).
# Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(iproute2 nftables iptables iputils-arping iputils-ping tcpdump systemd dbus
      libxml2-utils psmisc procps keepalived
      libvirt0 libcpg4 libnss3 libxml2 libuuid1)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: system packages present"

# The real fence_virtd and stock fence_xvm, unpacked (not installed) for tests/fence_virtd.rs.
bash tools/install-fence-virtd.sh

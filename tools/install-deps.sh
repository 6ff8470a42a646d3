#!/usr/bin/env bash
# Installs what oneha's tests and demo need on a fresh Debian 12 machine (run as root).
# Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(curl iproute2 nftables iptables iputils-arping iputils-ping tcpdump systemd dbus
      util-linux mount e2fsprogs xfsprogs
      libxml2-utils psmisc procps keepalived python3 python3-venv
      libvirt0 libcpg4 libnss3 libxml2 libuuid1
      openipmi ipmitool fence-agents)
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

# OpenNebula's own Python client, pyone, as an independent check of the fake oned
# (tests/oned_fake_compat.rs). In a venv: Debian's python refuses system-wide pip installs.
PYONE_VERSION=7.3.80
PYONE_VENV=/opt/oneha-test/pyone-venv
if ! "$PYONE_VENV/bin/python3" -c "import pyone, importlib.metadata as m; assert m.version('pyone') == '$PYONE_VERSION'" 2>/dev/null; then
  echo "install-deps: installing pyone $PYONE_VERSION in $PYONE_VENV"
  python3 -m venv "$PYONE_VENV"
  "$PYONE_VENV/bin/pip" install -q --disable-pip-version-check "pyone==$PYONE_VERSION"
fi
echo "install-deps: pyone $PYONE_VERSION present in $PYONE_VENV"

# promtool (Debian's prometheus package, unpacked, not installed: no service) for the alert
# rules' checks and scenarios in tests/dashboards.rs. Optional: without it those skip.
PROM_DIR=/opt/oneha-test/prometheus
if [ ! -x "$PROM_DIR/usr/bin/promtool" ]; then
  echo "install-deps: unpacking promtool into $PROM_DIR"
  tmp=$(mktemp -d)
  if (cd "$tmp" && (apt-get download prometheus >/dev/null 2>&1 || \
        (apt-get update -qq && apt-get download prometheus >/dev/null))); then
    mkdir -p "$PROM_DIR"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    install -D -m 0755 "$tmp/x/usr/bin/promtool" "$PROM_DIR/usr/bin/promtool"
  else
    echo "install-deps: WARNING: prometheus package not downloadable; alert rule scenarios will skip"
  fi
  rm -rf "$tmp"
fi

# cargo-deny for `make deny` (part of `make test`): built from crates.io, pinned. A failed
# build does not fail the install: `make deny` then says every check is skipped.
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  echo "install-deps: building cargo-deny $CARGO_DENY_VERSION (a few minutes)"
  if ! nice -n 10 cargo install --quiet --locked "cargo-deny@$CARGO_DENY_VERSION"; then
    echo "install-deps: WARNING: cargo-deny could not be installed; make deny will skip its checks"
  fi
fi
cargo deny --version 2>/dev/null | sed 's/^/install-deps: /' || true
